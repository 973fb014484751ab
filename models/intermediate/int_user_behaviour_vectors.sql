{#- Behavioural vectors for clustering: counts, rates and category mix per user, in real units.
    Every measure that exists elsewhere is read from there, never recomputed: sessions from
    fct_sessions (the profile's session definition), per-event counts and revenue from
    fct_user_activity_daily. Only what no other model measures (category mix, viewed price,
    basket size) comes from the product events. Behaviour = page, screen and behavioural track
    calls; identify, alias and group calls (and consent, which rides on them) are not
    behaviour. Every user with any call has a row (is_clusterable false when there is too little
    behaviour), so no profile is left out of the clustering. Transforms (log1p, scaling) and the
    choice of features happen in the Python clustering step. Recency is measured against
    as_of(). Grain: one row per canonical_user_id. -#}

{%- set categories = var('clustering_categories') -%}
{%- set behaviour_counts = [
    'page_views', 'screen_views', 'product_views', 'searches', 'cart_adds', 'cart_removes',
    'checkouts_started', 'orders', 'refunds', 'feature_uses',
] -%}

with

activity_daily as (
    select
        *,
        {{ behaviour_counts | join(' + ') }} as behaviour_events
    from {{ ref('fct_user_activity_daily') }}
    where first_event_at <= {{ as_of() }}
),

sessions as (
    select * from {{ ref('fct_sessions') }}
    where started_at <= {{ as_of() }}
),

product_events as (
    select
        canonical_user_id,
        event_name,
        lower({{ json_text('properties', '$.category') }}) as product_category,
        case
            when event_name = 'Product Viewed'
                then {{ try_cast(json_text('properties', '$.price'), 'double') }}
        end as viewed_price,
        case
            when event_name = 'Order Completed'
                then {{ json_number_sum('properties', '$.products[*].quantity') }}
        end as listed_units,
        case
            when event_name = 'Order Completed'
                then {{ try_cast(json_text('properties', '$.quantity'), 'double') }}
        end as order_quantity
    from {{ ref('int_events_stitched') }}
    where
        event_name in ('Product Viewed', 'Order Completed')
        and event_at <= {{ as_of() }}
),

user_activity as (
    select
        canonical_user_id,
        {%- for column in behaviour_counts %}
            sum({{ column }}) as {{ column }},
        {%- endfor %}
        -- the daily amounts are published DOUBLE: summed as DECIMAL, exact in any row order
        cast(sum(cast(revenue as decimal(38, 2))) as double) as revenue,
        sum(behaviour_events) as events,
        count(distinct case when behaviour_events > 0 then activity_date end) as active_days
    from activity_daily
    group by canonical_user_id
),

user_sessions as (
    select
        canonical_user_id,
        count(*) as sessions,
        min(started_at) as first_seen_at,
        max(ended_at) as last_seen_at
    from sessions
    group by canonical_user_id
),

user_products as (
    select
        canonical_user_id,
        {%- for category in categories %}
            count(
                case when event_name = 'Product Viewed' and product_category = '{{ category }}' then 1 end
            ) as views_{{ category }},
        {%- endfor %}
        avg(viewed_price) as avg_viewed_price,
        avg(coalesce(listed_units, order_quantity)) as basket_units_per_order
    from product_events
    group by canonical_user_id
),

joined as (
    select
        user_activity.*,
        coalesce(user_sessions.sessions, 0) as sessions,
        user_sessions.first_seen_at,
        user_sessions.last_seen_at,
        {%- for category in categories %}
            coalesce(user_products.views_{{ category }}, 0) as views_{{ category }},
        {%- endfor %}
        user_products.avg_viewed_price,
        user_products.basket_units_per_order
    from user_activity
    left join user_sessions
        on user_activity.canonical_user_id = user_sessions.canonical_user_id
    left join user_products
        on user_activity.canonical_user_id = user_products.canonical_user_id
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
        screen_views,
        product_views,
        searches,
        cart_adds,
        cart_removes,
        checkouts_started,
        orders,
        revenue,
        feature_uses,
        avg_viewed_price,
        basket_units_per_order,
        revenue / nullif(orders, 0) as average_order_value,
        events * 1.0 / nullif(sessions, 0) as session_depth,
        events * 1.0 / nullif(active_days, 0) as events_per_active_day,
        (page_views + screen_views) * 1.0 / nullif(sessions, 0) as page_and_screen_views_per_session,
        product_views * 1.0 / nullif(sessions, 0) as product_views_per_session,
        searches * 1.0 / nullif(sessions, 0) as searches_per_session,
        cart_adds * 1.0 / nullif(sessions, 0) as cart_adds_per_session,
        feature_uses * 1.0 / nullif(sessions, 0) as feature_uses_per_session,
        -- undefined (null) without a started checkout: never a copy of orders
        orders * 1.0 / nullif(checkouts_started, 0) as orders_per_checkout,
        {%- for category in categories %}
            views_{{ category }} * 1.0 / nullif(product_views, 0) as share_{{ category }},
        {%- endfor %}
        coalesce(events >= {{ var('clustering_min_events') }} and sessions > 0, false) as is_clusterable
    from joined
),

final as (
    select * from rates
)

select * from final
