{#- Sum of the numbers at a JSON path with a wildcard, e.g. '$.products[*].quantity' (null when
    the path matches nothing). Used for basket size in int_user_behaviour_vectors. -#}
{% macro json_number_sum(json, path) -%}
    {{ return(adapter.dispatch('json_number_sum', 'personalization')(json, path)) }}
{%- endmacro %}

{% macro duckdb__json_number_sum(json, path) -%}
    list_sum(try_cast(json_extract({{ json }}, '{{ path }}') as double[]))
{%- endmacro %}

{#- Spark: a wildcard path matching one value gives that value, several give a JSON array. An
    item that is not a number is skipped (DuckDB's try_cast nulls the whole list). -#}
{% macro spark__json_number_sum(json, path) -%}
    aggregate(
        coalesce(
            from_json(get_json_object({{ json }}, '{{ path }}'), 'array<double>'),
            array(try_cast(get_json_object({{ json }}, '{{ path }}') as double))
        ),
        cast(null as double),
        (total, item) -> case when item is null then total else coalesce(total, 0) + item end
    )
{%- endmacro %}

{% macro default__json_number_sum(json, path) -%}
    {{ exceptions.raise_compiler_error("json_number_sum is not implemented for adapter " ~ adapter.type()) }}
{%- endmacro %}
