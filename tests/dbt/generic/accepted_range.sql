{#- dbt-utils' accepted_range (same name and arguments): fails for every row whose column lies
    outside [min_value, max_value] (either bound optional; strict bounds with inclusive=false).
    Documented in tests/dbt/generic/_generic_tests.yml. -#}
{% test accepted_range(model, column_name, min_value=none, max_value=none, inclusive=true) %}

{%- set below = '<' if inclusive else '<=' -%}
{%- set above = '>' if inclusive else '>=' %}

select {{ column_name }}
from {{ model }}
where
    {%- if min_value is not none %} {{ column_name }} {{ below }} {{ min_value }}{% endif %}
    {%- if min_value is not none and max_value is not none %} or{% endif %}
    {%- if max_value is not none %} {{ column_name }} {{ above }} {{ max_value }}{% endif %}

{% endtest %}
