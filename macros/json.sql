{#- JSON access, dispatched per engine. `path` is a JSONPath string such as '$.properties.price'. -#}

{% macro json_text(json, path) -%}
    {{ return(adapter.dispatch('json_text', 'personalization')(json, path)) }}
{%- endmacro %}

{% macro duckdb__json_text(json, path) -%}
    json_extract_string({{ json }}, '{{ path }}')
{%- endmacro %}

{% macro spark__json_text(json, path) -%}
    get_json_object({{ json }}, '{{ path }}')
{%- endmacro %}

{% macro default__json_text(json, path) -%}
    {{ exceptions.raise_compiler_error("json_text is not implemented for adapter " ~ adapter.type()) }}
{%- endmacro %}


{#- The JSON type of the value at `path`: one of null (absent), 'null', 'string', 'integer',
    'number', 'boolean', 'array', 'object' - the vocabulary of the tracking plan. -#}
{% macro json_kind(json, path) -%}
    {{ return(adapter.dispatch('json_kind', 'personalization')(json, path)) }}
{%- endmacro %}

{% macro duckdb__json_kind(json, path) -%}
    {{ duckdb_json_type_as_kind("json_type(" ~ json ~ ", '" ~ path ~ "')") }}
{%- endmacro %}

{#- DuckDB's json_type names in the tracking plan's vocabulary. -#}
{% macro duckdb_json_type_as_kind(type_expr) -%}
    case {{ type_expr }}
        when 'VARCHAR' then 'string'
        when 'BIGINT' then 'integer'
        when 'UBIGINT' then 'integer'
        when 'DOUBLE' then 'number'
        when 'BOOLEAN' then 'boolean'
        when 'ARRAY' then 'array'
        when 'OBJECT' then 'object'
        when 'NULL' then 'null'
    end
{%- endmacro %}

{% macro default__json_kind(json, path) -%}
    {{ exceptions.raise_compiler_error("json_kind is not implemented for adapter " ~ adapter.type()) }}
{%- endmacro %}


{% macro json_is_valid(text) -%}
    {{ return(adapter.dispatch('json_is_valid', 'personalization')(text)) }}
{%- endmacro %}

{% macro duckdb__json_is_valid(text) -%}
    coalesce(json_valid({{ text }}), false)
{%- endmacro %}

{% macro spark__json_is_valid(text) -%}
    (get_json_object({{ text }}, '$') is not null)
{%- endmacro %}

{% macro default__json_is_valid(text) -%}
    {{ exceptions.raise_compiler_error("json_is_valid is not implemented for adapter " ~ adapter.type()) }}
{%- endmacro %}


{#- Several JSON paths at once, as an array of text (a list in DuckDB): one parse per row
    instead of one per path. Index the result with array_item(array, position), 1-based. -#}
{% macro json_text_many(json, paths) -%}
    {{ return(adapter.dispatch('json_text_many', 'personalization')(json, paths)) }}
{%- endmacro %}

{% macro duckdb__json_text_many(json, paths) -%}
    json_extract_string({{ json }}, ['{{ paths | join("', '") }}'])
{%- endmacro %}

{% macro spark__json_text_many(json, paths) -%}
    array({% for path in paths %}get_json_object({{ json }}, '{{ path }}'){{ ', ' if not loop.last }}{% endfor %})
{%- endmacro %}

{% macro default__json_text_many(json, paths) -%}
    {{ exceptions.raise_compiler_error("json_text_many is not implemented for adapter " ~ adapter.type()) }}
{%- endmacro %}


{#- The json_kind (see above) of several paths at once, as an array. -#}
{% macro json_kind_many(json, paths) -%}
    {{ return(adapter.dispatch('json_kind_many', 'personalization')(json, paths)) }}
{%- endmacro %}

{% macro duckdb__json_kind_many(json, paths) -%}
    list_transform(
        json_type({{ json }}, ['{{ paths | join("', '") }}']),
        kind -> {{ duckdb_json_type_as_kind('kind') }}
    )
{%- endmacro %}

{% macro default__json_kind_many(json, paths) -%}
    {{ exceptions.raise_compiler_error("json_kind_many is not implemented for adapter " ~ adapter.type()) }}
{%- endmacro %}


{#- Element `position` (1-based) of an array. -#}
{% macro array_item(array, position) -%}
    {{ return(adapter.dispatch('array_item', 'personalization')(array, position)) }}
{%- endmacro %}

{% macro duckdb__array_item(array, position) -%}
    {{ array }}[{{ position }}]
{%- endmacro %}

{% macro default__array_item(array, position) -%}
    element_at({{ array }}, {{ position }})
{%- endmacro %}
