{#- A money amount as the marts publish it: DOUBLE, rounded to cents. Amounts are summed as
    DECIMAL inside (exact), and cast once at the mart boundary: DECIMAL(38,2) reaches pandas (from
    Parquet or DuckDB) as Python Decimal objects (dtype object) and several BI tools as text, while
    every reader takes DOUBLE as a number (docs/architecture.md, "Money"). -#}
{% macro money(expression) -%}
    round(cast({{ expression }} as double), 2)
{%- endmacro %}
