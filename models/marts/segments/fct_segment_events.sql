{#- Entered / exited events, one per opening and closing of a membership spell. event_at is the
    as_of of the build that saw the change. Grain: one row per (segment_name, canonical_user_id,
    event_type, event_at). -#}

with

history as (
    select * from {{ ref('fct_segment_membership_history') }}
),

entered as (
    select
        segment_name,
        canonical_user_id,
        'entered' as event_type,
        valid_from as event_at
    from history
),

exited as (
    select
        segment_name,
        canonical_user_id,
        'exited' as event_type,
        valid_to as event_at
    from history
    where valid_to is not null
),

final as (
    select * from entered
    union all
    select * from exited
)

select * from final
