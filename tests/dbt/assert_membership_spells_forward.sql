{#- A membership spell ends after it starts: never before (an as_of moved backwards would do that)
    and never at the same instant (a second build at one as_of corrects, it does not add). -#}
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
    where valid_to <= valid_from
)

select * from final
