{#- dbt-utils' unique_combination_of_columns (same name and arguments): fails for every
    combination of `combination_of_columns` that occurs more than once (a composite primary key).
    Documented in tests/dbt/generic/_generic_tests.yml. -#}
{% test unique_combination_of_columns(model, combination_of_columns, quote_columns=false) %}

{%- if quote_columns -%}
    {%- set columns = [] -%}
    {%- for column in combination_of_columns -%}
        {%- do columns.append(adapter.quote(column)) -%}
    {%- endfor -%}
{%- else -%}
    {%- set columns = combination_of_columns -%}
{%- endif %}

select
    {{ columns | join(', ') }},
    count(*) as occurrences
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1

{% endtest %}
