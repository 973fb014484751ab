{#- A membership spell never ends before it starts (an as_of moved backwards would do that). -#}
with

history as (
    select * from {{ ref('fct_segment_membership_history') }}
),

final as (
    select
        segment_name,
        canonical_user_id,
        valid_from,
        valid_to
    from history
    where valid_to < valid_from
)

select * from final
