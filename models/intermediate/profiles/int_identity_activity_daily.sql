{#- Behaviour counts per raw identity (userId, else anonymousId) and day, over events up to
    as_of() only. Order amounts in var('reporting_currency') come from int_order_amounts, summed
    per identity and day there (it keeps each order line's identity and time): the events are
    counted without their message ids, which a join of every event to its amount read.
    Incremental: a run recomputes exactly the (identity, day) pairs that need it, from all their
    events up to as_of:
    - pairs with events loaded since the last run (less var('lookback_hours')): late events of
      any age are counted, and re-runs change nothing;
    - pairs with events after the as_of of the last run and up to this as_of: a later as_of picks
      up events loaded earlier but stamped after the earlier as_of;
    - pairs built with events after this as_of (as_of moved back): recomputed, possibly to a row
      with events = 0, which fct_user_activity_daily leaves out;
    - pairs with an order line whose amount int_order_amounts rewrote in this invocation (its
      build_id; the selectors build int_order_amounts with this model): a late Order Completed
      changes the amount of an earlier refund of its order.
    Every row records the as_of it was built at (built_as_of) and the run that wrote it
    (build_sequence); the last run's as_of is the lower bound of the second rule.
    Identity stitching happens downstream (fct_user_activity_daily), because it can change
    retroactively. Grain: one row per (identity_key, activity_date). -#}
{{ config(
    materialized=incremental_or_table(),
    incremental_strategy='delete+insert',
    unique_key=['identity_key', 'activity_date'],
    on_schema_change='fail',
) }}

with

{#- the events up to as_of with their identity and day: read by `selected` directly rather than
    through a CTE read twice, which DuckDB would write out whole (every event) on every run -#}
{%- set events_up_to_as_of -%}
    select
        coalesce(user_id, anonymous_id) as identity_key,
        cast(event_at as date) as activity_date,
        *
    from {{ ref('stg_events') }}
    where event_at <= {{ as_of() }}
{%- endset %}

order_amounts as (
    select * from {{ ref('int_order_amounts') }}
    where event_at <= {{ as_of() }}
),

{%- if is_incremental() %}
{#- the previous run: its load high-water mark, sequence number and as_of, read before the SQL
    runs (literals: DuckDB skips the row groups loaded before the mark) -#}
{%- set previous = this_table_literals([
    ['max(loaded_at)', 'timestamp'],
    ['max(build_sequence)', 'integer'],
    ['max(built_as_of) filter (where build_sequence = (select max(build_sequence) from ' ~ this ~ '))', 'timestamp'],
]) %}

{#- the (identity, day) pairs to recompute; each rule reads the events by a literal of its own
    column (one scan each, which DuckDB prunes by the literal) -#}
{%- set touched_pairs %}
    select
        coalesce(user_id, anonymous_id) as identity_key,
        cast(event_at as date) as activity_date
    from {{ ref('stg_events') }}
    where
        event_at <= {{ as_of() }}
        and loaded_at > {{ dbt.dateadd('hour', -1 * var('lookback_hours'), previous[0]) }}
    union
    select
        coalesce(user_id, anonymous_id) as identity_key,
        cast(event_at as date) as activity_date
    from {{ ref('stg_events') }}
    where
        event_at <= {{ as_of() }}
        and event_at > {{ previous[2] }}
    union
    select
        identity_key,
        activity_date
    from {{ this }}
    where last_event_at > {{ as_of() }}
    union
    -- pairs with an order line whose amount this run's int_order_amounts rewrote (a late
    -- Order Completed gives an earlier refund of its order its amount)
    select
        identity_key,
        cast(event_at as date) as activity_date
    from {{ ref('int_order_amounts') }}
    where
        event_at <= {{ as_of() }}
        and build_id = '{{ invocation_id }}'
{%- endset %}
{#- the range of the touched identities, read before the SQL runs: `selected` narrows each scan
    to it (a filter DuckDB applies inside the scan, to the id column first), which it does not
    derive itself from a join with a CTE -#}
{%- set touched_range = run_query(
    "select min(identity_key), max(identity_key) from (" ~ touched_pairs ~ ") as pairs"
).rows[0] if execute else [none, none] %}
{%- set lowest = 'null' if touched_range[0] is none else quoted_literal(touched_range[0]) %}
{%- set highest = 'null' if touched_range[1] is none else quoted_literal(touched_range[1]) %}

touched as (
    {{ touched_pairs }}
),
{%- endif %}

selected as (
    -- the events of the pairs to recompute (a full build: every event, no join). The identity is
    -- the userId, else the anonymousId: one join per case, each on a plain column narrowed to
    -- the touched identities' range (a join on the coalesce read every event)
    {%- if is_incremental() %}
        select events.*
        from ({{ events_up_to_as_of }}) as events
        inner join touched
            on
                events.user_id = touched.identity_key
                and events.activity_date = touched.activity_date
        where events.user_id between {{ lowest }} and {{ highest }}
        union all
        select events.*
        from ({{ events_up_to_as_of }}) as events
        inner join touched
            on
                events.anonymous_id = touched.identity_key
                and events.activity_date = touched.activity_date
        where
            events.user_id is null
            and events.anonymous_id between {{ lowest }} and {{ highest }}
    {%- else %}
        {{ events_up_to_as_of }}
    {%- endif %}
),

aggregated as (
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
        count(case when event_name = 'Order Cancelled' then 1 end) as cancellations,
        count(case when event_name = 'Feature Used' then 1 end) as feature_uses,
        -- the events sent with a userId (the others are identified only if the identity map
        -- stitches their anonymousId: fct_user_activity_daily's identified_events)
        count(user_id) as user_id_events,
        min(event_at) as first_event_at,
        max(event_at) as last_event_at,
        max(loaded_at) as loaded_at
    from selected
    group by identity_key, activity_date
),

money as (
    -- each order, refund and cancellation with its amount in the reporting currency (null when
    -- its currency has no rate): int_order_amounts, the one place money is computed, summed per
    -- identity and day (of the pairs to recompute)
    select
        order_amounts.identity_key,
        cast(order_amounts.event_at as date) as activity_date,
        count(case
            when
                order_amounts.event_name = 'Order Completed'
                and order_amounts.amount is not null
                and order_amounts.reporting_amount is null
                then 1
        end) as orders_unconverted,
        count(case
            when
                order_amounts.is_reversal
                and order_amounts.amount is not null
                and order_amounts.reporting_amount is null
                then 1
        end) as reversals_unconverted,
        coalesce(sum(case
            when order_amounts.event_name = 'Order Completed' then order_amounts.reporting_amount
        end), 0) as revenue,
        coalesce(sum(case
            when order_amounts.is_reversal then order_amounts.reporting_amount
        end), 0) as refunded_amount
    from order_amounts
    {%- if is_incremental() %}
        inner join touched
            on
                order_amounts.identity_key = touched.identity_key
                and cast(order_amounts.event_at as date) = touched.activity_date
    {%- endif %}
    group by order_amounts.identity_key, cast(order_amounts.event_at as date)
),

counted as (
    -- the counts with the day's money (an order line is an event of its pair: every money row
    -- has its counts)
    select
        aggregated.*,
        money.orders_unconverted,
        money.reversals_unconverted,
        money.revenue,
        money.refunded_amount
    from aggregated
    left join money
        on
            aggregated.identity_key = money.identity_key
            and aggregated.activity_date = money.activity_date
),

final as (
    -- a recomputed pair with no event left (all after as_of) gets zeros; on a full build every
    -- pair comes from an event
    select
        {%- if is_incremental() %}
            touched.identity_key,
            touched.activity_date,
        {%- else %}
            counted.identity_key,
            counted.activity_date,
        {%- endif %}
        {%- for column in activity_count_columns() %}
            coalesce(counted.{{ column }}, 0) as {{ column }},
        {%- endfor %}
        {%- for column in activity_amount_columns() %}
            coalesce(counted.{{ column }}, 0) as {{ column }},
        {%- endfor %}
        coalesce(counted.user_id_events, 0) as user_id_events,
        counted.first_event_at,
        counted.last_event_at,
        counted.loaded_at,
        {{ as_of() }} as built_as_of,
        {%- if is_incremental() %}
            coalesce({{ previous[1] }}, 0) + 1 as build_sequence
        {%- else %}
            1 as build_sequence
        {%- endif %}
    {%- if is_incremental() %}
        from touched
        left join counted
            on
                touched.identity_key = counted.identity_key
                and touched.activity_date = counted.activity_date
    {%- else %}
        from counted
    {%- endif %}
)

select * from final
