{#- Census warehouse-managed audiences: the people table, activatable members only. id is the
    canonical user id; the email only as its keyed hash; no raw PII. Grain: one row per id. -#}

with

memberships as (
    select * from {{ ref('audience_memberships') }}
),

profiles as (
    select * from {{ ref('dim_user_profiles') }}
),

emails as (
    select
        canonical_user_id,
        email_hash,
        row_number() over (
            partition by canonical_user_id
            order by event_at desc, message_id desc
        ) as recency_rank
    from {{ ref('int_events_stitched') }}
    where email_hash is not null
),

people as (
    select distinct person_id
    from memberships
),

final as (
    select
        people.person_id as id,
        emails.email_hash,
        profiles.is_identified,
        profiles.lifecycle_stage,
        profiles.favourite_category,
        profiles.orders,
        profiles.revenue,
        profiles.last_seen_at
    from people
    inner join profiles
        on people.person_id = profiles.canonical_user_id
    left join emails
        on people.person_id = emails.canonical_user_id
            and emails.recency_rank = 1
)

select * from final
