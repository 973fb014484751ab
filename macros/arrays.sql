{#- Arrays of reason codes, dispatched per engine. -#}

{#- An array of the non-null values of the given SQL expressions. -#}
{% macro non_null_array(expressions) -%}
    {{ return(adapter.dispatch('non_null_array', 'personalization')(expressions)) }}
{%- endmacro %}

{% macro duckdb__non_null_array(expressions) -%}
    list_filter([
        {{ expressions | join(',\n        ') }}
    ], value -> value is not null)
{%- endmacro %}

{% macro spark__non_null_array(expressions) -%}
    filter(array(
        {{ expressions | join(',\n        ') }}
    ), value -> value is not null)
{%- endmacro %}

{% macro default__non_null_array(expressions) -%}
    {{ exceptions.raise_compiler_error("non_null_array is not implemented for adapter " ~ adapter.type()) }}
{%- endmacro %}


{% macro array_size(expr) -%}
    {{ return(adapter.dispatch('array_size', 'personalization')(expr)) }}
{%- endmacro %}

{% macro duckdb__array_size(expr) -%}
    len({{ expr }})
{%- endmacro %}

{% macro spark__array_size(expr) -%}
    size({{ expr }})
{%- endmacro %}

{% macro default__array_size(expr) -%}
    {{ exceptions.raise_compiler_error("array_size is not implemented for adapter " ~ adapter.type()) }}
{%- endmacro %}


{#- Whether an array holds a value. -#}
{% macro array_contains(expr, value) -%}
    {{ return(adapter.dispatch('array_contains', 'personalization')(expr, value)) }}
{%- endmacro %}

{% macro duckdb__array_contains(expr, value) -%}
    list_contains({{ expr }}, {{ value }})
{%- endmacro %}

{% macro spark__array_contains(expr, value) -%}
    array_contains({{ expr }}, {{ value }})
{%- endmacro %}

{% macro default__array_contains(expr, value) -%}
    {{ exceptions.raise_compiler_error("array_contains is not implemented for adapter " ~ adapter.type()) }}
{%- endmacro %}


{#- The value of `value` on the row where `ordering` is largest (an aggregate). -#}
{% macro arg_max(value, ordering) -%}
    {{ return(adapter.dispatch('arg_max', 'personalization')(value, ordering)) }}
{%- endmacro %}

{% macro spark__arg_max(value, ordering) -%}
    max_by({{ value }}, {{ ordering }})
{%- endmacro %}

{% macro default__arg_max(value, ordering) -%}
    arg_max({{ value }}, {{ ordering }})
{%- endmacro %}
