{#- The one place an order's money is computed, for the profile (int_identity_activity_daily),
    the trait catalogue (property `reporting_amount`) and the imputation features: every Order
    Completed, Order Refunded and Order Cancelled up to as_of, with its amount in
    var('reporting_currency').
    - amount: `revenue`, else `total` (staging's order_amount); a refund or cancellation that
      names no amount reverses the whole order (the first Order Completed with its order_id);
    - currency: the event's, else the order's, else var('default_currency');
    - reporting_amount: converted with the rates seed (ref_currency_rates); null when the
      currency has no rate (counted as unconverted by the profile, never summed).
    Incremental by load high-water mark (load_mark_state(), macros/touched_users.sql): a run
    recomputes every line of the orders (order_id) named by lines loaded after the latest
    loaded_at here or stamped in (previous as_of, as_of] (a late Order Completed changes the
    amount of an earlier refund), and the new lines without an order_id. A full rebuild after a
    privacy request or when the rates seed or the currency vars change (input_fingerprint).
    build_id marks the rows this run wrote: int_identity_activity_daily recomputes their
    (identity, day) pairs, so a refund whose order arrives late gets its amount there too. Each
    line keeps its raw identity (identity_key: userId, else anonymousId) and time, so that model
    sums the money per identity and day from here and never reads the events' message ids.
    Grain: one row per message_id. -#}
{{ config(
    materialized=incremental_or_table(),
    incremental_strategy='delete+insert',
    unique_key='message_id',
    on_schema_change='fail',
    pre_hook="{{ load_mark_delete_all('loaded_at', 'event_at', order_amounts_fingerprint()) }}",
) }}
-- depends_on: {{ ref('privacy_requests') }}
{%- set state = load_mark_state('loaded_at', 'event_at', order_amounts_fingerprint()) %}

with

{#- the order lines up to as_of; read by each step below rather than through one shared CTE,
    which DuckDB would write out whole (every order line) on every run -#}
{%- set order_lines -%}
    select * from {{ ref('stg_events') }}
    where
        event_at <= {{ as_of() }}
        and event_name in ('Order Completed', 'Order Refunded', 'Order Cancelled')
{%- endset %}

{%- if not state.full %}

new_lines as (
    -- a literal load mark: DuckDB skips the row groups loaded before it
    select
        message_id,
        order_id
    from ({{ order_lines }}) as events
    where {{ state.new_lines }}
),
{%- endif %}

selected as (
    -- every line of an order a new line names, and the new lines without an order_id (a full
    -- build: every line)
    {%- if state.full %}
        {{ order_lines }}
    {%- else %}
        select *
        from ({{ order_lines }}) as events
        where
            order_id is not null
            and order_id in (select new_lines.order_id from new_lines)
        union all
        select *
        from ({{ order_lines }}) as events
        where
            order_id is null
            and {{ state.new_lines }}
    {%- endif %}
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
    -- every order the run recomputes; the first copy of an order_id wins
    select
        order_id,
        {{ arg_min('order_amount', 'event_at') }} as order_amount,
        {{ arg_min('coalesce(order_currency, ' ~ quoted_literal(var('default_currency')) ~ ')', 'event_at') }}
            as order_currency
    from selected
    where event_name = 'Order Completed' and order_id is not null
    group by order_id
),

amounts as (
    select
        selected.message_id,
        selected.event_name,
        selected.order_id,
        selected.event_name in ('Order Refunded', 'Order Cancelled') as is_reversal,
        coalesce(selected.user_id, selected.anonymous_id) as identity_key,
        selected.event_at,
        coalesce(
            selected.order_amount,
            case when selected.event_name != 'Order Completed' then orders.order_amount end
        ) as amount,
        coalesce(
            selected.order_currency,
            case when selected.event_name != 'Order Completed' then orders.order_currency end,
            {{ quoted_literal(var('default_currency')) }}
        ) as currency,
        selected.loaded_at
    from selected
    left join orders
        on selected.order_id = orders.order_id
),

final as (
    select
        amounts.message_id,
        amounts.event_name,
        amounts.order_id,
        amounts.is_reversal,
        amounts.identity_key,
        amounts.event_at,
        amounts.amount,
        amounts.currency,
        cast(
            amounts.amount / rates.units_per_eur * reporting_rate.reporting_units_per_eur
            as decimal(18, 2)
        ) as reporting_amount,
        amounts.loaded_at,
        '{{ invocation_id }}' as build_id,
        {{ order_amounts_fingerprint() }} as input_fingerprint
    from amounts
    cross join reporting_rate
    left join rates
        on amounts.currency = rates.currency_code
)

select * from final
