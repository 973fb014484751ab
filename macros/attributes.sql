{#- For each attribute: its winning value (cast), source and observed_at, from rows of
    (attribute_name, attribute_value, source, observed_at) grouped by user. A 'varchar' type is
    text_type() (Spark 4 accepts varchar only with a length). -#}
{% macro pivot_attribute_columns(attributes) -%}
    {%- for attribute, cast_to in attributes.items() -%}
        {%- set name = quoted_literal(attribute) %}
        {%- set sql_type = text_type() if cast_to == 'varchar' else cast_to %}
        cast(max(case when attribute_name = {{ name }} then attribute_value end)
            as {{ sql_type }}) as {{ attribute }},
        max(case when attribute_name = {{ name }} then source end) as {{ attribute }}_source,
        max(case when attribute_name = {{ name }} then observed_at end)
            as {{ attribute }}_observed_at{{ ',' if not loop.last }}
    {% endfor -%}
{%- endmacro %}
