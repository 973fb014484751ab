{#- How a Python model's result is written on DuckDB (dbt-duckdb's py_write_table, overridden):
    a model with config column_compression ({column: method}) has its table created with those
    compression methods (personalization/table_storage.py; a temporary relation and the
    partitioned or sorted tables keep dbt-duckdb's own path). -#}
{% macro py_write_table(temporary, relation, compiled_code, partitioned_by=none, sorted_by=none) -%}
{%- set compression = config.get('column_compression') or {} -%}
{%- if temporary or partitioned_by or sorted_by or not compression -%}
{{ dbt.py_write_table(temporary, relation, compiled_code, partitioned_by, sorted_by) }}
{%- else -%}
{{ compiled_code }}


def materialize(df, con):
    from personalization.table_storage import create_table

    create_table(con, df, '{{ relation }}', '{{ relation.database }}', {{ tojson(compression) }})
{%- endif %}
{%- endmacro %}

{#- dbt-duckdb writes an incremental Python model's new rows into a relation it names
    <model>__dbt_tmp<timestamp>, in the warehouse's main schema (py_write_table ignores
    `temporary`), inserts them into the model's table and never drops it: every raw load left a
    table behind holding a copy of its lines. The raw load's post-hook drops them (the ones
    earlier runs left too). -#}
{% macro drop_python_model_leftovers() -%}
    {%- set statements = [] -%}
    {%- if execute and target.type == 'duckdb' -%}
        {%- set leftovers = run_query(
            "select schema_name, table_name from duckdb_tables() where database_name = '"
            ~ this.database ~ "' and starts_with(table_name, '" ~ this.identifier ~ "__dbt_tmp')") -%}
        {%- for row in leftovers.rows -%}
            {%- do statements.append('drop table if exists "' ~ this.database ~ '"."' ~ row[0] ~ '"."' ~ row[1] ~ '"') -%}
        {%- endfor -%}
    {%- endif -%}
    {{ statements | join(';\n') if statements else 'select 1' }}
{%- endmacro %}
