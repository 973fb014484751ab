{#- The build log: every `dbt build` / `dbt run` records itself in raw.dbt_builds (its id = dbt's
    invocation_id, the as_of it used, whether that was pinned by the var or PERSONALIZATION_AS_OF,
    when it started and finished, success or failed) and the models it built successfully in
    raw.dbt_build_models. A killed build stays 'running'. publish reads both; the Python entry
    points read the pinned as_of (docs/architecture.md, "Reference time").
    Wired as on-run-start / on-run-end hooks in dbt_project.yml. -#}

{% macro build_log_schema() -%}
    {{ return(target.database ~ '.raw') }}
{%- endmacro %}

{% macro is_logged_build() -%}
    {{ return(adapter.dispatch('is_logged_build', 'personalization')()) }}
{%- endmacro %}

{% macro default__is_logged_build() -%}
    {{ return(execute and flags.WHICH in ('build', 'run')) }}
{%- endmacro %}

{#- Spark: no build log yet (its SQL is DuckDB's; docs/scale-out.md). -#}
{% macro spark__is_logged_build() -%}
    {{ return(false) }}
{%- endmacro %}

{% macro record_build_start() %}
    {%- if not personalization.is_logged_build() -%}
        {{ return('select 1 as no_build_log') }}
    {%- endif -%}
    {%- set log_schema = personalization.build_log_schema() -%}
    {%- set pinned_value = var('as_of', none) or env_var('PERSONALIZATION_AS_OF', '') -%}
    {%- set log_table = adapter.get_relation(target.database, 'raw', 'dbt_builds') -%}
    {%- if log_table is none -%}
        {%- set check = run_query(
            "select cast(" ~ as_of() ~ " as varchar), null, false"
        ) -%}
    {%- else -%}
        {%- set check = run_query(
            "select cast(" ~ as_of() ~ " as varchar) as this_as_of, "
            ~ "(select cast(max(as_of) as varchar) from " ~ log_table ~ " "
            ~ "where status = 'success') as previous_as_of, "
            ~ "coalesce((select max(as_of) from " ~ log_table ~ " where status = 'success') > "
            ~ as_of() ~ ", false) as is_backwards"
        ) -%}
    {%- endif -%}
    {%- set this_as_of, previous_as_of, is_backwards = check.rows[0] -%}
    {%- if this_as_of is none -%}
        {{ exceptions.raise_compiler_error(
            "as_of '" ~ pinned_value ~ "' (the as_of var or PERSONALIZATION_AS_OF) is not an ISO "
            ~ "timestamp such as 2026-01-11T00:00:00Z") }}
    {%- endif -%}
    {%- if is_backwards and not flags.FULL_REFRESH and not var('allow_as_of_rewind', false) -%}
        {{ exceptions.raise_compiler_error(
            "refusing to build at as_of " ~ this_as_of ~ ": an earlier build of this warehouse "
            ~ "used as_of " ~ previous_as_of ~ ", and moving the reference time backwards would "
            ~ "corrupt the segment membership history (spells ending before they start). Build "
            ~ "at as_of >= " ~ previous_as_of ~ " (set the as_of var or PERSONALIZATION_AS_OF), "
            ~ "or rebuild the history at the earlier time with `dbt build --full-refresh`.") }}
    {%- endif -%}
    {{ return(
        "create schema if not exists " ~ log_schema ~ "; "
        ~ "create table if not exists " ~ log_schema ~ ".dbt_builds (build_id varchar, "
        ~ "command varchar, as_of timestamp, as_of_pinned boolean, full_refresh boolean, "
        ~ "started_at timestamp, finished_at timestamp, status varchar, failures integer); "
        ~ "create table if not exists " ~ log_schema ~ ".dbt_build_models (build_id varchar, "
        ~ "unique_id varchar, model_schema varchar, model_name varchar, finished_at timestamp); "
        ~ "insert into " ~ log_schema ~ ".dbt_builds values ('" ~ invocation_id ~ "', '"
        ~ flags.WHICH ~ "', " ~ as_of() ~ ", " ~ ('true' if pinned_value else 'false') ~ ", "
        ~ ('true' if flags.FULL_REFRESH else 'false') ~ ", "
        ~ adapter.dispatch('current_utc_timestamp', 'personalization')() ~ ", null, 'running', null)"
    ) }}
{% endmacro %}

{% macro record_build_end(results) %}
    {%- if not personalization.is_logged_build() -%}
        {{ return('select 1 as no_build_log') }}
    {%- endif -%}
    {%- set log_schema = personalization.build_log_schema() -%}
    {%- set failures = results | selectattr('status', 'in', ['error', 'fail', 'skipped', 'runtime error']) | list | length -%}
    {%- set built = [] -%}
    {%- for result in results
        if result.node.resource_type in ('model', 'seed') and result.status == 'success' -%}
        {%- do built.append(
            "('" ~ invocation_id ~ "', '" ~ result.node.unique_id ~ "', '" ~ result.node.schema
            ~ "', '" ~ result.node.name ~ "', " ~ adapter.dispatch('current_utc_timestamp', 'personalization')() ~ ")"
        ) -%}
    {%- endfor -%}
    {%- set insert_models = (
        "insert into " ~ log_schema ~ ".dbt_build_models values " ~ built | join(', ') ~ "; "
    ) if built else "" -%}
    {{ return(
        insert_models ~ "update " ~ log_schema ~ ".dbt_builds set finished_at = "
        ~ adapter.dispatch('current_utc_timestamp', 'personalization')() ~ ", status = '"
        ~ ('success' if failures == 0 else 'failed') ~ "', failures = " ~ failures
        ~ " where build_id = '" ~ invocation_id ~ "'"
    ) }}
{% endmacro %}
