{#- The micro-batch's key guard of one table (issue 16; docs/orchestration.md, "Issue 16: folded
    guard tests"): every key check the table declares as a dbt test (unique,
    unique_combination_of_columns, not_null, relationships), folded into one query that returns
    one row per violation with its `reason` (`unique(a, b)`, `not_null(a)`,
    `relationships(a -> people.id)`) and the offending key as text (`row_key`). The checks are
    read from the graph, so each key is declared once (dbt's own tests, which the hourly and daily
    runs keep on the whole table) and a new key test is folded without editing this test.

    `rows` says which rows a run wrote, the only rows checked:
    - 'all': the whole table (tables rebuilt whole, or small);
    - 'touched_users': the rows of the users in int_touched_users, and rows with no
      canonical_user_id (a row the run wrote without a user still fails not_null); every row
      when the model's touched_every_user config says the run rewrote every user;
    - 'loaded': the rows loaded after the previous run's load high-water mark
      (touched_high_water_mark(), the mark int_touched_users used), and rows with no loaded_at:
      append-only raw and staging tables.
    `parents` lists the models a folded relationships test points to, as `ref('people')`: the
    guard then runs after them (dbt orders a test by its refs); a missing one fails to compile.
    A uniqueness rule counts over the whole table the keys found among those rows, so a written
    row duplicating an unwritten one fails too; a duplicate between two unwritten rows is left to
    the whole-table tests of the hourly and daily runs. Documented in
    tests/dbt/generic/_generic_tests.yml. -#}
{% test guard_keys(model, rows='all', parents=[]) %}

{%- if rows not in ['all', 'touched_users', 'loaded'] -%}
    {{ exceptions.raise_compiler_error(
        "guard_keys on " ~ model ~ ": rows must be 'all', 'touched_users' or 'loaded', not '"
        ~ rows ~ "'") }}
{%- endif -%}
{%- set rules = personalization.guard_key_rules(model, parents) if execute else [] -%}
{%- if execute and rules | length == 0 -%}
    {{ exceptions.raise_compiler_error(
        "guard_keys on " ~ model ~ ": the model declares no key test to fold") }}
{%- endif -%}
{%- set scope = personalization.guard_keys_scope(model, rows) if execute else 'true' %}

with

written as (
    -- the rows this run wrote (`rows` above)
    select * from {{ model }}
    where {{ scope }}
),

violations as (
    select
        cast(null as {{ dbt.type_string() }}) as reason,
        cast(null as {{ dbt.type_string() }}) as row_key
    where false
    {%- for rule in rules %}
        union all
        {%- if rule.kind == 'not_null' %}
            select
                '{{ rule.reason }}' as reason,
                cast(null as {{ dbt.type_string() }}) as row_key
            from written
            where {{ rule.columns[0] }} is null
        {%- elif rule.kind == 'relationships' %}
            select
                '{{ rule.reason }}' as reason,
                cast(written.{{ rule.columns[0] }} as {{ dbt.type_string() }}) as row_key
            from written
            where
                written.{{ rule.columns[0] }} is not null
                and not exists (
                    select 1 from {{ rule.to }} as parent
                    where parent.{{ rule.field }} = written.{{ rule.columns[0] }}
                )
        {%- else %}
            select
                '{{ rule.reason }}' as reason,
                {{ personalization.guard_keys_text(rule.columns, 'whole') }} as row_key
            from {{ model }} as whole
            {%- if scope != 'true' %}
                -- the keys the run wrote, joined by hash (a correlated exists cost 5-10x)
                inner join (
                    select distinct {{ rule.columns | join(', ') }} from written
                ) as written_keys
                    on
                    {%- for column in rule.columns %}
                        whole.{{ column }} is not distinct from written_keys.{{ column }}
                        {%- if not loop.last %} and{% endif %}
                    {%- endfor %}
            {%- endif %}
            where
                {%- if rule.kind == 'unique' %}
                    whole.{{ rule.columns[0] }} is not null
                {%- else %}
                    true
                {%- endif %}
            group by
                {%- for column in rule.columns %}
                    whole.{{ column }}{% if not loop.last %},{% endif %}
                {%- endfor %}
            having count(*) > 1
        {%- endif %}
    {%- endfor %}
),

final as (
    select * from violations
)

select * from final

{% endtest %}
