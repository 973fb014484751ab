{#- The touched-user materialisation (issue 16; docs/architecture.md, "Touched users"): the
    pattern of a touched-user model stated once. A model says
    `config(materialized=touched_users_or_table())`:
    - first build, --full-refresh, or the relation is a view: a plain table from the model's
      SQL (as dbt's table materialisation: built aside and swapped in when one exists);
    - otherwise (a micro-batch, an hourly or daily run): in one transaction, delete the touched
      users' rows (every row when the model's `touched_every_user` config says so), then insert
      the model's rows by column name. The model's SQL keeps only the touched users
      (touched_users_only(), which is_incremental() switches on for this materialisation).
    A schema guard (what on_schema_change='fail' gave) fails the run before anything changes when
    the model's columns (names or types, from DuckDB's DESCRIBE of the query, which binds it
    without running it) differ from the table's. The column and table comments (persist_docs)
    are rewritten only when they differ from the descriptions. Pre- and post-hooks run as in
    dbt's table materialisation. dbt-duckdb's incremental materialisation spent about a dozen
    statements per model on the same (a temporary table, column introspection, the insert, the
    drop, the comments); this one runs three: the guard, the delete and the insert.
    Spark (and any other engine) builds a plain table (touched_users_or_table() is 'table'). -#}
{% materialization touched_users, adapter='duckdb' -%}
    {%- set existing_relation = load_cached_relation(this) -%}
    {%- set target_relation = this.incorporate(type='table') -%}
    {%- set rebuild = existing_relation is none or existing_relation.is_view or should_full_refresh() -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {%- set backup_relation = make_backup_relation(target_relation,
        'table' if existing_relation is none else existing_relation.type) -%}
    {%- if rebuild -%}
        {%- set intermediate_relation = make_intermediate_relation(target_relation) -%}
        {{ drop_relation_if_exists(load_cached_relation(intermediate_relation)) }}
        {{ drop_relation_if_exists(load_cached_relation(backup_relation)) }}
        {%- set built_relation = target_relation if existing_relation is none else intermediate_relation -%}
        {%- call statement('main') -%}
            {{ create_table_as(False, built_relation, compiled_code) }}
        {%- endcall -%}
        {%- if existing_relation is not none -%}
            {%- do adapter.rename_relation(existing_relation, backup_relation) -%}
            {%- do adapter.rename_relation(intermediate_relation, target_relation) -%}
        {%- endif -%}
        {%- do persist_docs(target_relation, model) -%}
    {%- else -%}
        {%- set documented = personalization.touched_users_schema_guard(target_relation, compiled_code) -%}
        {%- set every_user = personalization.touched_users_every_user(config.get('touched_every_user', false)) -%}
        {%- call statement('main') -%}
            {{ personalization.delete_touched_users(every_user) }};
            insert into {{ target_relation }} by name (
                {{ compiled_code }}
            )
        {%- endcall -%}
        {%- if not documented -%}
            {%- do persist_docs(target_relation, model) -%}
        {%- endif -%}
    {%- endif -%}

    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {%- do adapter.commit() -%}
    {%- if rebuild and existing_relation is not none -%}
        {%- do adapter.drop_relation(backup_relation) -%}
    {%- endif -%}
    {{ run_hooks(post_hooks, inside_transaction=False) }}

    {{ return({'relations': [target_relation]}) }}
{%- endmaterialization %}


{#- The materialisation of a touched-user model: touched_users on DuckDB; a plain table on Spark,
    whose Parquet tables cannot delete rows (every build recomputes every user, as
    incremental_or_table()). Example: `config(materialized=touched_users_or_table())` ->
    `touched_users` on DuckDB. -#}
{% macro touched_users_or_table() -%}
    {{ return(adapter.dispatch('touched_users_or_table', 'personalization')()) }}
{%- endmacro %}

{% macro spark__touched_users_or_table() -%}
    {{ return('table') }}
{%- endmacro %}

{% macro default__touched_users_or_table() -%}
    {{ return('touched_users') }}
{%- endmacro %}


{#- Whether an incremental run deletes every row of a touched-user model (its config
    `touched_every_user`): a boolean, or the name of a project macro without arguments that
    returns one when the model runs (fct_segment_membership: whether a rule reads a column that
    changes for untouched users, known only once the definitions are read).
    Example: `touched_users_every_user('segment_membership_reads_every_user')` -> false. -#}
{% macro touched_users_every_user(setting) -%}
    {%- if setting is string -%}
        {%- set found = context.get(setting) -%}
        {%- if found is none -%}
            {{ exceptions.raise_compiler_error(
                "touched_every_user names no macro: '" ~ setting ~ "' (model " ~ this ~ ")") }}
        {%- endif -%}
        {{ return(found() is sameas true) }}
    {%- endif -%}
    {{ return(setting is sameas true) }}
{%- endmacro %}


{#- The schema guard of a touched-user model on an incremental run (what on_schema_change='fail'
    gave, without building the rows first): one query compares the columns of the model's query
    (DuckDB's DESCRIBE binds it without running it) with the table's, by name and type, and
    raises a compiler error naming every difference. Returns whether the table's and columns'
    comments already equal the model's descriptions (persist_docs is then skipped).
    Example: `touched_users_schema_guard(this, compiled_code)` -> true, or an error
    "fct_sessions: the model's columns differ from the table's (on_schema_change: fail):
    new_column (model VARCHAR, table missing); run with --full-refresh". -#}
{% macro touched_users_schema_guard(relation, sql) -%}
    {%- set found = run_query(
        "with model_columns as (select column_name, column_type from (describe " ~ sql ~ "\n)),"
        ~ " table_columns as (select column_name, data_type, comment from duckdb_columns()"
        ~ " where database_name = '" ~ relation.database ~ "' and schema_name = '" ~ relation.schema
        ~ "' and table_name = '" ~ relation.identifier ~ "')"
        ~ " select coalesce(model_columns.column_name, table_columns.column_name) as column_name,"
        ~ " model_columns.column_type, table_columns.data_type, table_columns.comment,"
        ~ " (select comment from duckdb_tables() where database_name = '" ~ relation.database
        ~ "' and schema_name = '" ~ relation.schema ~ "' and table_name = '" ~ relation.identifier
        ~ "') as table_comment"
        ~ " from model_columns full outer join table_columns"
        ~ " on model_columns.column_name = table_columns.column_name"
        ~ " order by column_name"
    ) -%}
    {%- set changed = [] -%}
    {%- set docs = {'same': true} -%}
    {%- set persisted = config.get('persist_docs', {}) -%}
    {%- for row in found.rows -%}
        {%- set name, model_type, table_type, comment, table_comment = row -%}
        {%- if model_type != table_type -%}
            {%- do changed.append(name ~ ' (model ' ~ (model_type or 'missing') ~ ', table '
                ~ (table_type or 'missing') ~ ')') -%}
        {%- endif -%}
        {%- set described = model.columns.get(name, {}).get('description') -%}
        {%- if persisted.get('columns') and described and described != comment -%}
            {%- do docs.update({'same': false}) -%}
        {%- endif -%}
        {%- if loop.first and persisted.get('relation') and model.description
            and model.description != table_comment -%}
            {%- do docs.update({'same': false}) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if changed -%}
        {{ exceptions.raise_compiler_error(
            relation.identifier ~ ": the model's columns differ from the table's (on_schema_change: fail): "
            ~ changed | join('; ') ~ "; run with --full-refresh") }}
    {%- endif -%}
    {{ return(docs.same) }}
{%- endmacro %}


{#- dbt's is_incremental(), also true for a touched_users model: an existing table, not a full
    refresh. The touched-user macros (touched_users_only, touched_events, ...) and the models'
    `{% if is_incremental() %}` blocks then read only the touched users, as they did under
    dbt's incremental materialisation. Overrides dbt's global macro of the same name.
    Example: `is_incremental()` -> true on a micro-batch of fct_sessions. -#}
{% macro is_incremental() -%}
    {%- if not execute -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set relation = adapter.get_relation(this.database, this.schema, this.table) -%}
    {{ return(relation is not none
        and relation.type == 'table'
        and model.config.materialized in ['incremental', 'touched_users']
        and not should_full_refresh()) }}
{%- endmacro %}
