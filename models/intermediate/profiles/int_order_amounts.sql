{#- The one place an order's money is computed, for the profile (int_identity_activity_daily),
    the trait catalogue (property `reporting_amount`) and the imputation features: every Order
    Completed, Order Refunded and Order Cancelled up to as_of, with its amount in
    var('reporting_currency').
    - amount: `revenue`, else `total` (staging's order_amount); a refund or cancellation that
      names no amount reverses the whole order (the first Order Completed with its order_id);
    - currency: the event's, else the order's, else var('default_currency');
    - reporting_amount: converted with the rates seed (ref_currency_rates); null when the
      currency has no rate (counted as unconverted by the profile, never summed).
    Grain: one row per message_id. -#}

with

events as (
    select * from {{ ref('stg_events') }}
    where
        event_at <= {{ as_of() }}
        and event_name in ('Order Completed', 'Order Refunded', 'Order Cancelled')
),

rates as (
    select * from {{ ref('ref_currency_rates') }}
),

reporting_rate as (
    select units_per_eur as reporting_units_per_eur
    from rates
    where currency_code = {{ quoted_literal(var('reporting_currency')) }}
),

orders as (
    -- every order up to as_of; the first copy of an order_id wins
    select
        order_id,
        {{ arg_min('order_amount', 'event_at') }} as order_amount,
        {{ arg_min('coalesce(order_currency, ' ~ quoted_literal(var('default_currency')) ~ ')', 'event_at') }}
            as order_currency
    from events
    where event_name = 'Order Completed' and order_id is not null
    group by order_id
),

amounts as (
    select
        events.message_id,
        events.event_name,
        events.order_id,
        events.event_name in ('Order Refunded', 'Order Cancelled') as is_reversal,
        coalesce(
            events.order_amount,
            case when events.event_name != 'Order Completed' then orders.order_amount end
        ) as amount,
        coalesce(
            events.order_currency,
            case when events.event_name != 'Order Completed' then orders.order_currency end,
            {{ quoted_literal(var('default_currency')) }}
        ) as currency
    from events
    left join orders
        on events.order_id = orders.order_id
),

final as (
    select
        amounts.message_id,
        amounts.event_name,
        amounts.order_id,
        amounts.is_reversal,
        amounts.amount,
        amounts.currency,
        cast(
            amounts.amount / rates.units_per_eur * reporting_rate.reporting_units_per_eur
            as decimal(18, 2)
        ) as reporting_amount
    from amounts
    cross join reporting_rate
    left join rates
        on amounts.currency = rates.currency_code
)

select * from final
