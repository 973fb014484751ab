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
    Spark (and any other engine) builds a plain table (touched_users_or_table() is 'table').
    Its macros (touched_users_or_table, the schema guard, is_incremental) are in
    macros/touched_users.sql: this file holds only the materialisation, which plain Jinja (the
    segment SQL renderer, personalization/segments/render.py) cannot read. -#}
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
