{#- dbt-utils' expression_is_true (same name, arguments and null handling): an invariant over each
    row; fails for every row where `expression` is false (a null result passes, as in dbt-utils: add
    `and x is not null` to the expression, or a not_null test, to forbid nulls). On a column, the
    expression follows the column name (`expression: ">= 0"` on column x checks x >= 0).
    Documented in tests/dbt/generic/_generic_tests.yml. -#}
{% test expression_is_true(model, expression, column_name=none) %}

{%- set condition = (column_name ~ ' ' ~ expression) if column_name is not none else expression %}

select *
from {{ model }}
where not ({{ condition }})

{% endtest %}
