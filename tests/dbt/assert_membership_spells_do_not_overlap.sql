{#- A user's spells in a segment follow each other: each starts after the previous one's end
    (at most one open spell, no spell starting inside another, and no spell split in two at one
    instant: a member again at the as_of its spell closed has that spell reopened). -#}
with

history as (
    select * from {{ ref('fct_segment_membership_history') }}
),

ordered as (
    select
        segment_name,
        canonical_user_id,
        valid_from,
        valid_to,
        lag(valid_from) over (
            partition by segment_name, canonical_user_id order by valid_from
        ) as previous_valid_from,
        lag(valid_to) over (
            partition by segment_name, canonical_user_id order by valid_from
        ) as previous_valid_to
    from history
),

final as (
    select * from ordered
    where
        previous_valid_from is not null
        and (previous_valid_to is null or previous_valid_to >= valid_from)
)

select * from final
