{#- Census warehouse-managed audiences: who is in which audience. Activatable members only
    (member with the consent the segment requires). Grain: one row per (audience_id, person_id). -#}

with

membership as (
    select * from {{ ref('fct_segment_membership') }}
),

final as (
    select
        segment_name as audience_id,
        canonical_user_id as person_id
    from membership
    where is_activatable
)

select * from final
