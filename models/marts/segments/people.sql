{#- Census warehouse-managed audiences: the people table, activatable members only. id is the
    canonical user id; the email only as its keyed hash; no raw PII. Grain: one row per id. -#}

with

memberships as (
    select * from {{ ref('audience_memberships') }}
),

profiles as (
    select * from {{ ref('dim_user_profiles') }}
),

behaviour as (
    -- the latest e-mail hash per user (int_user_behaviour_totals: touched-user incremental, so
    -- a run does not rank every stitched event again)
    select * from {{ ref('int_user_behaviour_totals') }}
),

people as (
    select distinct person_id
    from memberships
),

final as (
    select
        people.person_id as id,
        behaviour.email_hash,
        profiles.is_identified,
        profiles.lifecycle_stage,
        profiles.favourite_category,
        profiles.orders,
        profiles.revenue,
        profiles.last_seen_at
    from people
    inner join profiles
        on people.person_id = profiles.canonical_user_id
    left join behaviour
        on people.person_id = behaviour.canonical_user_id
)

select * from final
