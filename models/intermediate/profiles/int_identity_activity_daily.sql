{#- Behaviour counts per raw identity (userId, else anonymousId) and day. Incremental: a run
    recomputes exactly the (identity, day) pairs that received events since the last run, from
    all their events - so late events of any age are counted, and re-runs change nothing.
    Identity stitching happens downstream (fct_user_activity_daily), because it can change
    retroactively. Grain: one row per (identity_key, activity_date). -#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['identity_key', 'activity_date'],
    on_schema_change='fail',
) }}

with

events as (
    select
        coalesce(user_id, anonymous_id) as identity_key,
        cast(event_at as date) as activity_date,
        *
    from {{ ref('stg_events') }}
),

touched as (
    -- the (identity, day) pairs with events loaded since the last run (all pairs on a full build)
    select distinct
        identity_key,
        activity_date
    from events
    {%- if is_incremental() %}
        where loaded_at > (
                select {{ dbt.dateadd('hour', -1 * var('lookback_hours'), 'max(loaded_at)') }}
                from {{ this }}
            )
    {%- endif %}
),

selected as (
    select events.*
    from events
    inner join touched
        on
            events.identity_key = touched.identity_key
            and events.activity_date = touched.activity_date
),

final as (
    select
        identity_key,
        activity_date,
        count(*) as events,
        count(case when event_type = 'page' then 1 end) as page_views,
        count(case when event_type = 'screen' then 1 end) as screen_views,
        count(case when event_name = 'Product Viewed' then 1 end) as product_views,
        count(case when event_name = 'Products Searched' then 1 end) as searches,
        count(case when event_name = 'Product Added' then 1 end) as cart_adds,
        count(case when event_name = 'Product Removed' then 1 end) as cart_removes,
        count(case when event_name = 'Checkout Started' then 1 end) as checkouts_started,
        count(case when event_name = 'Order Completed' then 1 end) as orders,
        count(case when event_name = 'Order Refunded' then 1 end) as refunds,
        coalesce(sum(case
            when event_name = 'Order Completed'
                then {{ try_cast(json_text('properties', '$.revenue'), 'decimal(18, 2)') }}
        end), 0) as revenue,
        count(case when event_name = 'Feature Used' then 1 end) as feature_uses,
        min(event_at) as first_event_at,
        max(event_at) as last_event_at,
        max(loaded_at) as loaded_at
    from selected
    group by identity_key, activity_date
)

select * from final
