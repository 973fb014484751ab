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

{#- Spark: array_compact, not filter(..., lambda): Spark refuses a subquery (is_suppressed's)
    inside a higher-order function's arguments. -#}
{% macro spark__non_null_array(expressions) -%}
    array_compact(array(
        {{ expressions | join(',\n        ') }}
    ))
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


{#- The value of `value` on the row where `ordering` is largest (an aggregate). Rows where
    `value` is null are skipped, as DuckDB's arg_max does; Spark's max_by would return that
    null, so its ordering is nulled on those rows. -#}
{% macro arg_max(value, ordering) -%}
    {{ return(adapter.dispatch('arg_max', 'personalization')(value, ordering)) }}
{%- endmacro %}

{% macro spark__arg_max(value, ordering) -%}
    max_by({{ value }}, case when {{ value }} is not null then {{ ordering }} end)
{%- endmacro %}

{% macro default__arg_max(value, ordering) -%}
    arg_max({{ value }}, {{ ordering }})
{%- endmacro %}


{#- The value of `value` on the row where `ordering` is smallest (an aggregate; null values
    skipped, as arg_max). -#}
{% macro arg_min(value, ordering) -%}
    {{ return(adapter.dispatch('arg_min', 'personalization')(value, ordering)) }}
{%- endmacro %}

{% macro spark__arg_min(value, ordering) -%}
    min_by({{ value }}, case when {{ value }} is not null then {{ ordering }} end)
{%- endmacro %}

{% macro default__arg_min(value, ordering) -%}
    arg_min({{ value }}, {{ ordering }})
{%- endmacro %}


{#- A composite ordering key for arg_max / arg_min / max_by: `exprs` compared left to right (a
    struct; both engines order structs field by field). Used to break ties deterministically,
    e.g. ['event_at', 'message_id']: the latest event, and of events at the same instant the
    greatest message_id. DuckDB 1.5 orders max_by by a struct (DuckDB 1.0 did not, but no model
    runs there: it only reads published files). -#}
{% macro ordering_key(exprs) -%}
    {{ return(adapter.dispatch('ordering_key', 'personalization')(exprs)) }}
{%- endmacro %}

{% macro spark__ordering_key(exprs) -%}
    struct({{ exprs | join(', ') }})
{%- endmacro %}

{% macro default__ordering_key(exprs) -%}
    row({{ exprs | join(', ') }})
{%- endmacro %}


{#- Every column of `relation_alias` but `columns` (a select-list item). DuckDB: `* exclude`.
    Spark has no `* except`: a quoted regular expression matching every other name
    (spark.sql.parser.quotedRegexColumnNames, set by the spark target). -#}
{% macro star_exclude(relation_alias, columns) -%}
    {{ return(adapter.dispatch('star_exclude', 'personalization')(relation_alias, columns)) }}
{%- endmacro %}

{% macro spark__star_exclude(relation_alias, columns) -%}
    {{ relation_alias }}.`(?!({{ columns | join('|') }})$).+`
{%- endmacro %}

{% macro default__star_exclude(relation_alias, columns) -%}
    {{ relation_alias }}.* exclude ({{ columns | join(', ') }})
{%- endmacro %}


{#- A select-list item giving one row per element of an array (DuckDB unnest, Spark explode;
    no row for a null or empty array on both). -#}
{% macro unnest_array(expr) -%}
    {{ return(adapter.dispatch('unnest_array', 'personalization')(expr)) }}
{%- endmacro %}

{% macro spark__unnest_array(expr) -%}
    explode({{ expr }})
{%- endmacro %}

{% macro default__unnest_array(expr) -%}
    unnest({{ expr }})
{%- endmacro %}


{#- An array literal of strings (DuckDB's list literal, Spark's array()). -#}
{% macro string_array(values) -%}
    {{ return(adapter.dispatch('string_array', 'personalization')(values)) }}
{%- endmacro %}

{% macro spark__string_array(values) -%}
    {%- set literals = [] -%}
    {%- for value in values -%}{%- do literals.append(quoted_literal(value)) -%}{%- endfor -%}
    array({{ literals | join(', ') }})
{%- endmacro %}

{% macro default__string_array(values) -%}
    {{ quoted_literal_array(values) }}
{%- endmacro %}


{#- The keys of a JSON object, as an array of text (null for null). -#}
{% macro json_object_keys(json) -%}
    {{ return(adapter.dispatch('json_object_keys', 'personalization')(json)) }}
{%- endmacro %}

{% macro spark__json_object_keys(json) -%}
    json_object_keys({{ json }})
{%- endmacro %}

{% macro default__json_object_keys(json) -%}
    json_keys({{ json }})
{%- endmacro %}


{#- A select-list item giving one row per day from `first_date` to `last_date` (dates, both
    included), as a date. -#}
{% macro day_series(first_date, last_date) -%}
    {{ return(adapter.dispatch('day_series', 'personalization')(first_date, last_date)) }}
{%- endmacro %}

{% macro spark__day_series(first_date, last_date) -%}
    explode(sequence(cast({{ first_date }} as date), cast({{ last_date }} as date), interval 1 day))
{%- endmacro %}

{% macro default__day_series(first_date, last_date) -%}
    cast(unnest(generate_series(
            cast({{ first_date }} as timestamp), cast({{ last_date }} as timestamp), interval 1 day
        )) as date)
{%- endmacro %}
