{#- Engine-specific choices of the staging model (models/staging/stg_landing__events_checked.sql). -#}

{#- Whether staging finds each message id's first valid copy with a window over every line
    (Spark: a CTE read twice is inlined there, so an aggregate joined back would compute the
    whole chain of checks twice) or with an aggregate of the repeated ids joined back (DuckDB: a
    window carries every column of every line through its partitions; the CTE read twice is
    materialised once). Both mark the same lines as duplicates. -#}
{% macro duplicates_by_window() -%}
    {{ return(adapter.dispatch('duplicates_by_window', 'personalization')()) }}
{%- endmacro %}

{% macro spark__duplicates_by_window() -%}
    {{ return(true) }}
{%- endmacro %}

{% macro default__duplicates_by_window() -%}
    {{ return(false) }}
{%- endmacro %}
