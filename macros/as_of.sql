{#- The reference time for every window ("last 24 hours"), as a UTC timestamp expression.
    The var `as_of` (an ISO timestamp) fixes it for tests and historical data; unset, it is the
    time of the run. Nothing else in the project reads the clock. -#}
{% macro as_of() -%}
    {%- set value = var('as_of', none) -%}
    {%- if value -%}
        {{ return(to_utc_timestamp("'" ~ value ~ "'")) }}
    {%- else -%}
        {{ return(adapter.dispatch('current_utc_timestamp', 'personalization')()) }}
    {%- endif -%}
{%- endmacro %}

{% macro duckdb__current_utc_timestamp() -%}
    (get_current_timestamp() at time zone 'UTC')
{%- endmacro %}

{% macro default__current_utc_timestamp() -%}
    {{ dbt.current_timestamp() }}
{%- endmacro %}
