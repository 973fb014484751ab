{#- User profiles (foundation slice: activity counts and consent; the profiles issue adds traits,
    provenance, freshness and scores). Grain: one row per canonical_user_id. -#}

with

events as (
    select
        *,
        case
            when event_name = 'Order Completed'
                then {{ try_cast(json_text('properties', '$.revenue'), 'decimal(18, 2)') }}
        end as order_revenue
    from {{ ref('int_events_stitched') }}
),

consent as (
    select * from {{ ref('int_user_consent') }}
),

activity as (
    select
        canonical_user_id,
        max(case when identity_source = 'anonymous' then 0 else 1 end) = 1 as is_identified,
        min(event_at) as first_seen_at,
        max(event_at) as last_seen_at,
        count(*) as events,
        count(case when event_type = 'page' then 1 end) as page_views,
        count(case when event_name = 'Product Viewed' then 1 end) as product_views,
        count(case when event_name = 'Product Added' then 1 end) as cart_adds,
        count(case when event_name = 'Order Completed' then 1 end) as orders,
        coalesce(sum(order_revenue), 0) as revenue,
        count(case when event_name = 'Feature Used' then 1 end) as feature_uses
    from events
    group by canonical_user_id
),

final as (
    select
        activity.*,
        coalesce(consent.has_personalization_consent, false) as has_personalization_consent
    from activity
    left join consent
        on activity.canonical_user_id = consent.canonical_user_id
)

select * from final
