{#- The behaviour counts kept per user and day (int_identity_activity_daily), summed again
    wherever days are rolled up (fct_user_activity_daily, dim_user_profiles). One list, so a new
    count is added in one place. -#}
{% macro activity_count_columns() -%}
    {{ return(['events', 'page_views', 'screen_views', 'product_views', 'searches', 'cart_adds',
               'cart_removes', 'checkouts_started', 'orders', 'refunds', 'cancellations',
               'orders_unconverted', 'reversals_unconverted', 'feature_uses']) }}
{%- endmacro %}


{#- The amounts kept per user and day, in var('reporting_currency'): gross order revenue and the
    amount refunded or cancelled. -#}
{% macro activity_amount_columns() -%}
    {{ return(['revenue', 'refunded_amount']) }}
{%- endmacro %}


{#- `cast(sum(c) as bigint) as c` for every activity count, `sum(a) as a` for every amount
    (exact DECIMAL; as_money: the published money type, macros/money.sql). An amount is cast to
    DECIMAL(38, 2) before it is summed, so a roll-up of published (DOUBLE, cent-rounded) amounts
    is exact too: a DOUBLE sum depends on the order the rows arrive in, and a user's average
    order value on a half cent then rounded either way between two builds of the same data. -#}
{% macro sum_activity_counts(as_money=false) -%}
    {%- for column in activity_count_columns() %}
        cast(sum({{ column }}) as bigint) as {{ column }},
    {%- endfor %}
    {%- for column in activity_amount_columns() %}
        {%- if as_money %}
        {{ money('sum(cast(' ~ column ~ ' as decimal(38, 2)))') }} as {{ column }},
        {%- else %}
        sum(cast({{ column }} as decimal(38, 2))) as {{ column }},
        {%- endif %}
    {%- endfor %}
{%- endmacro %}


{#- Everything besides the events that shapes int_order_amounts' rows, as a SQL expression (an
    md5): the rates seed and the currency vars. The model stores it as input_fingerprint, and a
    run whose fingerprint differs rebuilds the table whole (load_mark_state()). Null where the
    table is rebuilt on every run (Spark: incremental_or_table() is `table`).
    Example: `{{ order_amounts_fingerprint() }} as input_fingerprint`. -#}
{% macro order_amounts_fingerprint() -%}
    {%- if personalization.incremental_or_table() != 'incremental' -%}
        {#- a table rebuilt on every run (Spark) needs none -#}
        cast(null as {{ personalization.text_type() }})
    {%- else -%}
    md5(
        {{ quoted_literal(var('reporting_currency') ~ '|' ~ var('default_currency') ~ '|') }}
        || coalesce((
            select string_agg(currency_code || ':' || cast(units_per_eur as varchar), ',' order by currency_code)
            from {{ ref('ref_currency_rates') }}
        ), '')
    )
    {%- endif -%}
{%- endmacro %}
