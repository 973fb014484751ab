{#- The load high-water mark of the previous run of the touched-user models (issue 16;
    docs/architecture.md, "Touched users"): the latest loaded_at of the judged lines that the
    latest run recorded in int_touched_user_runs up to the previous run (`state`,
    touched_users_state()) had read. A line loaded after it is new to this run, whatever its
    event time (late lines of any age count), and a line loaded before it was read by that run:
    load stamps are compared with load stamps (raw load and staging's own high-water mark), never
    with the build log's clock, and no lookback is needed. A run that saw no lines (or none
    recorded) gives the earliest timestamp: every line is new. A SQL literal.
    Example: `touched_high_water_mark(touched_users_state())` -> `cast('2026-01-05 10:00:00' as timestamp)`. -#}
{% macro touched_high_water_mark(state) -%}
    {%- set earliest = "cast('1900-01-01' as timestamp)" -%}
    {%- if state.full or not execute -%}
        {{ return(earliest) }}
    {%- endif -%}
    {%- set runs_node = graph.nodes.get('model.personalization.int_touched_user_runs') -%}
    {%- set found = run_query(
        "select cast(runs.loaded_high_water_mark as varchar)"
        ~ " from " ~ runs_node.relation_name ~ " as runs"
        ~ " inner join " ~ personalization.build_log_schema() ~ ".dbt_builds as builds"
        ~ " on runs.build_id = builds.build_id"
        ~ " where builds.status = 'success' and builds.finished_at <= " ~ state.finished_at
        ~ " order by builds.finished_at desc limit 1"
    ) -%}
    {%- if found.rows | length == 0 or found.rows[0][0] is none -%}
        {{ return(earliest) }}
    {%- endif -%}
    {{ return("cast('" ~ found.rows[0][0] ~ "' as timestamp)") }}
{%- endmacro %}


{#- Values of this model's own table read before its SQL runs, as SQL literals: `select_list` is
    a list of [SQL expression over the table, type]; the result is a list of the same length,
    each `cast('<value>' as <type>)`, or `null` when the table gives none (and while parsing). An
    incremental model filters its new lines by a literal rather than by a subquery on its table:
    DuckDB skips the row groups a literal rules out (a micro-batch of the staging model then
    reads only the lines loaded after its mark, not 10M load stamps), and plans the rest for the
    few rows it keeps.
    Example: `this_table_literals([['max(loaded_at)', 'timestamp']])[0]`
    -> `cast('2026-01-05 10:00:00' as timestamp)`. -#}
{% macro this_table_literals(select_list) -%}
    {%- set literals = [] -%}
    {%- set columns = [] -%}
    {%- for expression, type in select_list -%}
        {%- do columns.append("cast(" ~ expression ~ " as " ~ personalization.text_type() ~ ")") -%}
    {%- endfor -%}
    {%- set row = run_query("select " ~ columns | join(", ") ~ " from " ~ this).rows[0]
        if execute else [none] * select_list | length -%}
    {%- for expression, type in select_list -%}
        {%- set value = row[loop.index0] -%}
        {%- do literals.append("null" if value is none else "cast('" ~ value ~ "' as " ~ type ~ ")") -%}
    {%- endfor -%}
    {{ return(literals) }}
{%- endmacro %}
