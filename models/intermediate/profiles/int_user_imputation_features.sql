{#- Behaviour features that carry information about a user's age, for imputation: the mix of
    what they do, how much they spend, the price level they look at and the device they use;
    age_group (the favourite category) for the group-median method. known_age is the observed
    age only (never an imputed one). Grain: one row per canonical_user_id. -#}

with

events as (
    select * from {{ ref('int_events_stitched') }}
    where event_at <= {{ as_of() }}
),

attributes as (
    select * from {{ ref('int_user_attributes') }}
),

catalogue_traits as (
    select * from {{ ref('int_user_catalogue_traits') }}
),

order_amounts as (
    select * from {{ ref('int_order_amounts') }}
),

order_revenue as (
    -- gross order revenue in the reporting currency: the profile's money (int_order_amounts)
    select
        events.canonical_user_id,
        sum(order_amounts.reporting_amount) as revenue
    from events
    inner join order_amounts
        on events.message_id = order_amounts.message_id
    where order_amounts.event_name = 'Order Completed'
    group by events.canonical_user_id
),

behaviour as (
    select
        canonical_user_id,
        count(*) as events,
        {{ share_where("event_type in ('page', 'screen')") }} as page_view_share,
        {{ share_where("event_name = 'Product Viewed'") }} as product_view_share,
        {{ share_where("event_name = 'Products Searched'") }} as search_share,
        {{ share_where("event_name = 'Product Added'") }} as cart_add_share,
        {{ share_where("event_name = 'Feature Used'") }} as feature_use_share,
        count(case when event_name = 'Order Completed' then 1 end) as orders,
        coalesce(avg(case
            when event_name = 'Product Viewed'
                then {{ try_cast(json_text('properties', '$.price'), 'double') }}
        end), 0) as average_price_viewed,
        {{ share_where("device_type = 'mobile'") }} as mobile_share
    from events
    group by canonical_user_id
),

final as (
    select
        behaviour.*,
        cast(coalesce(order_revenue.revenue, 0) as double) as revenue,
        attributes.age as known_age,
        coalesce(catalogue_traits.favourite_category, 'none') as age_group
    from behaviour
    left join attributes
        on behaviour.canonical_user_id = attributes.canonical_user_id
    left join catalogue_traits
        on behaviour.canonical_user_id = catalogue_traits.canonical_user_id
    left join order_revenue
        on behaviour.canonical_user_id = order_revenue.canonical_user_id
)

select * from final
