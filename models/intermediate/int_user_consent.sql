{#- The latest consent each user gave (Segment's context.consent.categoryPreferences).
    Grain: one row per canonical_user_id that ever sent a consent preference. -#}

with

events as (
    select * from {{ ref('int_events_stitched') }}
    where consent_personalization is not null
        or consent_advertising is not null
        or consent_analytics is not null
),

ranked as (
    select
        canonical_user_id,
        consent_personalization,
        consent_advertising,
        consent_analytics,
        event_at,
        row_number() over (
            partition by canonical_user_id
            order by event_at desc, received_at desc, message_id desc
        ) as recency_rank
    from events
),

final as (
    select
        canonical_user_id,
        coalesce(consent_personalization, false) as has_personalization_consent,
        coalesce(consent_advertising, false) as has_advertising_consent,
        coalesce(consent_analytics, false) as has_analytics_consent,
        event_at as consent_updated_at
    from ranked
    where recency_rank = 1
)

select * from final
