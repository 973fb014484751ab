{#- Constructs whose SQL differs between the engines (DuckDB, Spark), besides those in
    arrays.sql and casts.sql. docs/scale-out.md lists every one. -#}

{#- The exact median of `expr` (interpolated between the two middle values), as an aggregate
    or a window function with a frame. Spark's median() refuses a window frame; its exact
    percentile() is the same figure and accepts one. -#}
{% macro median(expr) -%}
    {{ return(adapter.dispatch('median', 'personalization')(expr)) }}
{%- endmacro %}

{% macro spark__median(expr) -%}
    percentile({{ expr }}, 0.5)
{%- endmacro %}

{% macro default__median(expr) -%}
    median({{ expr }})
{%- endmacro %}


{#- The materialization of a model that updates its rows in place (delete+insert by a unique
    key): incremental on DuckDB. Spark's Parquet tables cannot delete rows (dbt-spark offers
    append, merge - Delta only - and insert_overwrite), so on Spark the model is a table that
    every build recomputes in full: the same rows as a first build, but a history model keeps
    only the current build's rows until the warehouse uses Delta (docs/scale-out.md). -#}
{% macro incremental_or_table() -%}
    {{ return(adapter.dispatch('incremental_or_table', 'personalization')()) }}
{%- endmacro %}

{% macro spark__incremental_or_table() -%}
    {{ return('table') }}
{%- endmacro %}

{% macro default__incremental_or_table() -%}
    {{ return('incremental') }}
{%- endmacro %}


{#- A JSONPath for Spark's get_json_object, which does not read json_key_path's quoted keys
    (`."key"`): a plain key as `.key`, any other as `['key']`. Other paths are unchanged. -#}
{% macro spark_json_path(path) -%}
    {%- set plain = modules.re.sub('\\."([A-Za-z0-9_]+)"', '.\\1', path) -%}
    {%- set bracketed = modules.re.sub('\\."((?:[^"\\\\]|\\\\.)*)"', "['\\1']", plain) -%}
    {{ return(bracketed if bracketed == plain else bracketed | replace('\\"', '"') | replace('\\\\', '\\')) }}
{%- endmacro %}


{#- A string literal on Spark: a quote is escaped with a backslash (Spark reads 'it''s' as two
    adjacent literals, 'it' 's', so DuckDB's doubled quote would silently drop it), and so is a
    backslash. Called through quoted_literal (macros/tracking_plan.sql) once it dispatches. -#}
{% macro spark__quoted_literal(value) -%}
    {{ return("'" ~ (value | string | replace('\\', '\\\\') | replace("'", "\\'")) ~ "'") }}
{%- endmacro %}


{#- The share (0..1, a double) of rows where `condition` holds, as an aggregate. DuckDB
    averages the decimal literals into a double; Spark keeps a DECIMAL rounded to 5 digits
    (0.66667), so it averages doubles. -#}
{% macro share_where(condition) -%}
    {{ return(adapter.dispatch('share_where', 'personalization')(condition)) }}
{%- endmacro %}

{% macro spark__share_where(condition) -%}
    avg(case when {{ condition }} then double(1) else double(0) end)
{%- endmacro %}

{% macro default__share_where(condition) -%}
    avg(case when {{ condition }} then 1.0 else 0.0 end)
{%- endmacro %}


{#- Whether staging's duplicate check runs its window only over the lines whose message id
    repeats in the run (models/staging/stg_landing__events_checked.sql, ranked): two halves of
    the checked lines with opposite filters. DuckDB: the window carries every column of its
    lines, so over every line it was the model's costliest operator. Spark: the two halves
    inline the whole chain of checks twice into one plan, and the driver ran out of heap
    (java.lang.OutOfMemoryError on the test fixture), so one window over every line. -#}
{% macro window_over_repeated_ids_only() -%}
    {{ return(adapter.dispatch('window_over_repeated_ids_only', 'personalization')()) }}
{%- endmacro %}

{% macro spark__window_over_repeated_ids_only() -%}
    {{ return(false) }}
{%- endmacro %}

{% macro default__window_over_repeated_ids_only() -%}
    {{ return(true) }}
{%- endmacro %}
