{#- The reference time for every window ("last 24 hours"), as a UTC timestamp expression.
    The var `as_of` (an ISO timestamp) fixes it; else the PERSONALIZATION_AS_OF environment
    variable; unset, it is the time of the run. Nothing else in the project reads the clock.
    (The Python entry points resolve it the same way and pass the var; see docs/architecture.md.) -#}
{% macro as_of() -%}
    {%- set value = var('as_of', none) or env_var('PERSONALIZATION_AS_OF', '') -%}
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
