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


{#- An ISO 8601 string as a UTC timestamp without time zone; null if unparseable. A string with
    an offset (Z, +02:00, -0500) is converted to UTC; one without a zone is read as UTC (never
    in the machine's local zone, so a build gives the same answer under any TZ). -#}
{% macro to_utc_timestamp(expr) -%}
    {{ return(adapter.dispatch('to_utc_timestamp', 'personalization')(expr)) }}
{%- endmacro %}

{% macro duckdb__to_utc_timestamp(expr) -%}
    case
        when regexp_matches({{ expr }}, '[0-9]:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?\s*([zZ]|[+-][0-9]{2}(:?[0-9]{2})?)$')
            then (try_cast({{ expr }} as timestamptz) at time zone 'UTC')
        else try_cast({{ expr }} as timestamp)
    end
{%- endmacro %}

{% macro spark__to_utc_timestamp(expr) -%}
    to_utc_timestamp(try_cast({{ expr }} as timestamp), current_timezone())
{%- endmacro %}

{% macro default__to_utc_timestamp(expr) -%}
    {{ exceptions.raise_compiler_error("to_utc_timestamp is not implemented for adapter " ~ adapter.type()) }}
{%- endmacro %}


{#- The SQL type of text: DuckDB's varchar; Spark 4 accepts varchar only with a length. -#}
{% macro text_type() -%}
    {{ return(adapter.dispatch('text_type', 'personalization')()) }}
{%- endmacro %}

{% macro spark__text_type() -%}
    string
{%- endmacro %}

{% macro default__text_type() -%}
    varchar
{%- endmacro %}
