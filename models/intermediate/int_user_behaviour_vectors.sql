{#- Behavioural vectors for clustering: counts, rates and category mix per user, in real units.
    Transforms (log1p, scaling) happen in the Python clustering step. Sessions: a new session
    starts after var clustering_session_gap_minutes of inactivity. Recency is measured against
    as_of(). Grain: one row per canonical_user_id. -#}

{%- set categories = var('clustering_categories') -%}

with

events as (
    select
        canonical_user_id,
        event_at,
        event_type,
        event_name,
        properties
    from {{ ref('int_events_stitched') }}
    where event_at <= {{ as_of() }}
),

events_typed as (
    select
        canonical_user_id,
        event_at,
        event_type,
        event_name,
        cast(event_at as date) as event_date,
        lower({{ json_text('properties', '$.category') }}) as product_category,
        case
            when event_name = 'Product Viewed'
                then {{ try_cast(json_text('properties', '$.price'), 'double') }}
        end as viewed_price,
        case
            when event_name = 'Order Completed'
                then {{ try_cast(json_text('properties', '$.revenue'), 'double') }}
        end as order_revenue,
        lag(event_at) over (partition by canonical_user_id order by event_at) as previous_event_at
    from events
),

session_starts as (
    select
        *,
        case
            when previous_event_at is null then 1
            when
                {{ dbt.datediff('previous_event_at', 'event_at', 'second') }}
                > {{ var('clustering_session_gap_minutes') }} * 60
                then 1
            else 0
        end as is_session_start
    from events_typed
),

activity as (
    select
        canonical_user_id,
        min(event_at) as first_seen_at,
        max(event_at) as last_seen_at,
        count(*) as events,
        count(distinct event_date) as active_days,
        sum(is_session_start) as sessions,
        count(case when event_type in ('page', 'screen') then 1 end) as page_views,
        count(case when event_name = 'Product Viewed' then 1 end) as product_views,
        count(case when event_name = 'Product List Viewed' then 1 end) as list_views,
        count(case when event_name = 'Products Searched' then 1 end) as searches,
        count(case when event_name = 'Product Added' then 1 end) as cart_adds,
        count(case when event_name = 'Product Removed' then 1 end) as cart_removes,
        count(case when event_name = 'Checkout Started' then 1 end) as checkouts_started,
        count(case when event_name = 'Order Completed' then 1 end) as orders,
        coalesce(sum(order_revenue), 0) as revenue,
        count(case when event_name = 'Feature Used' then 1 end) as feature_uses,
        {%- for category in categories %}
            count(
                case when event_name = 'Product Viewed' and product_category = '{{ category }}' then 1 end
            ) as views_{{ category }},
        {%- endfor %}
        avg(viewed_price) as avg_viewed_price
    from session_starts
    group by canonical_user_id
),

rates as (
    select
        canonical_user_id,
        first_seen_at,
        last_seen_at,
        {{ dbt.datediff('last_seen_at', as_of(), 'second') }} / 86400.0 as recency_days,
        {{ dbt.datediff('first_seen_at', as_of(), 'second') }} / 86400.0 as tenure_days,
        events,
        active_days,
        sessions,
        page_views,
        product_views,
        list_views,
        searches,
        cart_adds,
        cart_removes,
        checkouts_started,
        orders,
        revenue,
        feature_uses,
        coalesce(avg_viewed_price, 0) as avg_viewed_price,
        events * 1.0 / sessions as session_depth,
        events * 1.0 / active_days as events_per_active_day,
        page_views * 1.0 / active_days as page_views_per_active_day,
        product_views * 1.0 / active_days as product_views_per_active_day,
        page_views * 1.0 / sessions as page_views_per_session,
        product_views * 1.0 / sessions as product_views_per_session,
        searches * 1.0 / sessions as searches_per_session,
        cart_adds * 1.0 / sessions as cart_adds_per_session,
        feature_uses * 1.0 / sessions as feature_uses_per_session,
        orders * 1.0 / (checkouts_started + 1) as orders_per_checkout,
        {%- for category in categories %}
            case
                when product_views > 0 then views_{{ category }} * 1.0 / product_views else 0
            end as share_{{ category }},
        {%- endfor %}
        events >= {{ var('clustering_min_events') }} as is_clusterable
    from activity
),

final as (
    select * from rates
)

select * from final
