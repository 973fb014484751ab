{#- Casts that return null instead of failing. dbt.safe_cast is a plain cast on DuckDB. -#}

{% macro try_cast(expr, type) -%}
    {{ return(adapter.dispatch('try_cast', 'personalization')(expr, type)) }}
{%- endmacro %}

{% macro duckdb__try_cast(expr, type) -%}
    try_cast({{ expr }} as {{ type }})
{%- endmacro %}

{% macro spark__try_cast(expr, type) -%}
    try_cast({{ expr }} as {{ type }})
{%- endmacro %}

{% macro default__try_cast(expr, type) -%}
    {{ dbt.safe_cast(expr, type) }}
{%- endmacro %}


{#- An ISO 8601 string (any offset) as a UTC timestamp without time zone; null if unparseable. -#}
{% macro to_utc_timestamp(expr) -%}
    {{ return(adapter.dispatch('to_utc_timestamp', 'personalization')(expr)) }}
{%- endmacro %}

{% macro duckdb__to_utc_timestamp(expr) -%}
    (try_cast({{ expr }} as timestamptz) at time zone 'UTC')
{%- endmacro %}

{% macro spark__to_utc_timestamp(expr) -%}
    to_utc_timestamp(try_cast({{ expr }} as timestamp), current_timezone())
{%- endmacro %}

{% macro default__to_utc_timestamp(expr) -%}
    {{ exceptions.raise_compiler_error("to_utc_timestamp is not implemented for adapter " ~ adapter.type()) }}
{%- endmacro %}
