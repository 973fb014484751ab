{#- Sum of the numbers at a JSON path with a wildcard, e.g. '$.products[*].quantity' (null when
    the path matches nothing). Used for basket size in int_user_behaviour_vectors. -#}
{% macro json_number_sum(json, path) -%}
    {{ return(adapter.dispatch('json_number_sum', 'personalization')(json, path)) }}
{%- endmacro %}

{% macro duckdb__json_number_sum(json, path) -%}
    list_sum(try_cast(json_extract({{ json }}, '{{ path }}') as double[]))
{%- endmacro %}

{% macro default__json_number_sum(json, path) -%}
    {{ exceptions.raise_compiler_error("json_number_sum is not implemented for adapter " ~ adapter.type()) }}
{%- endmacro %}
