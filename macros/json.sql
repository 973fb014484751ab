{#- JSON access, dispatched per engine. `path` is a JSONPath string such as '$.properties.price'. -#}

{% macro json_text(json, path) -%}
    {{ return(adapter.dispatch('json_text', 'personalization')(json, path)) }}
{%- endmacro %}

{% macro duckdb__json_text(json, path) -%}
    json_extract_string({{ json }}, {{ quoted_literal(path) }})
{%- endmacro %}

{% macro spark__json_text(json, path) -%}
    get_json_object({{ json }}, {{ quoted_literal(spark_json_path(path)) }})
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
    {{ duckdb_json_type_as_kind("json_type(" ~ json ~ ", " ~ quoted_literal(path) ~ ")") }}
{%- endmacro %}

{#- Spark: the per-row type of a VARIANT (parse_json, Spark 4). An integer beyond BIGINT is a
    DECIMAL there ('number'), where DuckDB says UBIGINT ('integer') up to 2^64. -#}
{% macro spark__json_kind(json, path) -%}
    {{ spark_variant_type_as_kind(
        "schema_of_variant(variant_get(try_parse_json(" ~ json ~ "), " ~ quoted_literal(path) ~ "))"
    ) }}
{%- endmacro %}

{% macro spark_variant_type_as_kind(type_expr) -%}
    case
        when {{ type_expr }} = 'STRING' then 'string'
        when {{ type_expr }} in ('BIGINT', 'INT', 'SMALLINT', 'TINYINT') then 'integer'
        when {{ type_expr }} in ('DOUBLE', 'FLOAT') or {{ type_expr }} like 'DECIMAL%' then 'number'
        when {{ type_expr }} = 'BOOLEAN' then 'boolean'
        when {{ type_expr }} like 'ARRAY%' then 'array'
        when {{ type_expr }} like 'OBJECT%' then 'object'
        when {{ type_expr }} = 'VOID' then 'null'
    end
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
    json_extract_string({{ json }}, {{ quoted_literal_array(paths) }})
{%- endmacro %}

{% macro spark__json_text_many(json, paths) -%}
    array({% for path in paths %}get_json_object({{ json }}, {{ quoted_literal(spark_json_path(path)) }}){{ ', ' if not loop.last }}{% endfor %})
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
        json_type({{ json }}, {{ quoted_literal_array(paths) }}),
        kind -> {{ duckdb_json_type_as_kind('kind') }}
    )
{%- endmacro %}

{% macro spark__json_kind_many(json, paths) -%}
    array({% for path in paths %}{{ spark__json_kind(json, path) }}{{ ', ' if not loop.last }}{% endfor %})
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


{#- The JSONPath of one object key, quoted so that any key (dots, quotes, spaces) is one key. -#}
{% macro json_key_path(key, parent='$') -%}
    {{ return(parent ~ '."' ~ (key | string | replace('\\', '\\\\') | replace('"', '\\"')) ~ '"') }}
{%- endmacro %}


{#- The column that holds field `name`: prefix_name, quoted when the name is not a plain
    identifier (a tracking plan may name a property anything). -#}
{% macro field_column(prefix, name) -%}
    {%- set column = prefix ~ name -%}
    {%- if modules.re.match('^[a-z_][a-z0-9_]*$', column) -%}
        {{ return(column) }}
    {%- endif -%}
    {{ return('"' ~ column | replace('"', '""') ~ '"') }}
{%- endmacro %}


{#- Name the items of an array built by json_text_many / json_kind_many: `fields` is the list of
    names in the order of the paths, so each field is named once and read by name after that.
    Emits `array[1] as prefix_name1, array[2] as prefix_name2, ...` (no trailing comma). -#}
{% macro unpack_fields(array, names, prefix='') -%}
    {%- for name in names %}
        {{ array_item(array, loop.index) }} as {{ field_column(prefix, name) }}{{ ',' if not loop.last }}
    {%- endfor %}
{%- endmacro %}
