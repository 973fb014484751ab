{#- Whole years between a birth date and a date (an age), dispatched per engine. -#}
{% macro age_in_years(birth_date, at_date) -%}
    {{ return(adapter.dispatch('age_in_years', 'personalization')(birth_date, at_date)) }}
{%- endmacro %}

{% macro duckdb__age_in_years(birth_date, at_date) -%}
    date_part('year', age(cast({{ at_date }} as timestamp), cast({{ birth_date }} as timestamp)))
{%- endmacro %}

{% macro spark__age_in_years(birth_date, at_date) -%}
    floor(months_between({{ at_date }}, {{ birth_date }}) / 12)
{%- endmacro %}

{% macro default__age_in_years(birth_date, at_date) -%}
    {{ exceptions.raise_compiler_error("age_in_years is not implemented for adapter " ~ adapter.type()) }}
{%- endmacro %}


{#- Keyed HMAC-SHA256 of an identifier (personalization.privacy). On DuckDB the function is
    registered by the dbt-duckdb plugin personalization.duckdb_plugin; the key never enters SQL. -#}
{% macro pseudonymise(expr) -%}
    {{ return(adapter.dispatch('pseudonymise', 'personalization')(expr)) }}
{%- endmacro %}

{% macro default__pseudonymise(expr) -%}
    pseudonymise({{ expr }})
{%- endmacro %}
