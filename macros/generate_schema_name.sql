{#- Layers get plain schema names (staging, intermediate, marts) instead of dbt's
    <target_schema>_<custom> default, so BI readers see stable names on every target. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
