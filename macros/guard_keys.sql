{#- Helpers of the generic test guard_keys (tests/dbt/generic/guard_keys.sql): the micro-batch's
    folded key guard of one table (issue 16; docs/orchestration.md). -#}

{#- The key checks a model declares as dbt tests, read from the graph: a list of {kind,
    columns, reason, to, field}, sorted by the tests' names. A relationships test's parent must
    be among `parents` (the guard's refs, so that it runs after that model). -#}
{% macro guard_key_rules(model, parents=[]) -%}
    {%- set model_id = personalization.guard_keys_model_id(model) -%}
    {%- set rules = [] -%}
    {%- for node in graph.nodes.values() | sort(attribute='name')
        if node.resource_type == 'test' and node.attached_node == model_id -%}
        {%- set meta = node.test_metadata or {} -%}
        {%- set kwargs = meta.get('kwargs', {}) -%}
        {%- if meta.get('name') in ['unique', 'not_null', 'relationships',
            'unique_combination_of_columns'] -%}
        {%- set columns = kwargs.combination_of_columns
            if meta.name == 'unique_combination_of_columns' else [kwargs.column_name] -%}
        {%- set rule = {'kind': meta.name, 'columns': columns, 'to': none, 'field': none} -%}
        {%- if meta.name == 'relationships' -%}
            {%- set parents = node.depends_on.nodes | reject('equalto', model_id) | list -%}
            {%- set parent = graph.nodes.get(parents[0]) if parents | length == 1 else none -%}
            {%- if parent is none -%}
                {{ exceptions.raise_compiler_error(
                    "guard_keys: cannot fold " ~ node.name ~ " (its parent is not one model)") }}
            {%- endif -%}
            {#- each parent arrives rendered as text (the relation, or the node's unique_id) -#}
            {%- set to = [] -%}
            {%- for rendered in parents | map('string')
                if rendered == parent.unique_id or rendered.endswith('"' ~ parent.alias ~ '"') -%}
                {%- do to.append(parent.relation_name) -%}
            {%- endfor -%}
            {%- if to | length == 0 -%}
                {{ exceptions.raise_compiler_error(
                    "guard_keys on " ~ model ~ " folds " ~ node.name ~ ": add parents: [\"ref('"
                    ~ parent.name ~ "')\"] to its arguments, so that it runs after " ~ parent.name) }}
            {%- endif -%}
            {%- do rule.update({'to': to[0], 'field': kwargs.field}) -%}
            {%- do rule.update({'reason': 'relationships(' ~ columns[0] ~ ' -> '
                ~ parent.name ~ '.' ~ kwargs.field ~ ')'}) -%}
        {%- else -%}
            {%- do rule.update({'reason': (meta.name | replace('_combination_of_columns', ''))
                ~ '(' ~ columns | join(', ') ~ ')'}) -%}
        {%- endif -%}
        {%- do rules.append(rule) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(rules) }}
{%- endmacro %}


{#- The unique_id of the model behind a test's relation. -#}
{% macro guard_keys_model_id(model) -%}
    {%- for node in graph.nodes.values()
        if node.resource_type in ['model', 'seed', 'snapshot']
        and node.alias == model.identifier and node.schema == model.schema -%}
        {{ return(node.unique_id) }}
    {%- endfor -%}
    {{ exceptions.raise_compiler_error("guard_keys: no model behind " ~ model) }}
{%- endmacro %}


{#- The SQL condition of the rows a run wrote (guard_keys' `rows`); every row on a full rebuild. -#}
{% macro guard_keys_scope(model, rows) -%}
    {%- if rows == 'all' -%}
        {{ return('true') }}
    {%- endif -%}
    {%- if rows == 'loaded' -%}
        {#- the mark int_touched_users used (the earliest timestamp on a full rebuild) -#}
        {%- set mark = personalization.touched_high_water_mark(personalization.touched_users_state()) -%}
        {{ return('(loaded_at > ' ~ mark ~ ' or loaded_at is null)') }}
    {%- endif -%}
    {#- int_touched_users lists every user on a full rebuild: no state needed -#}
    {%- set node = graph.nodes.get(personalization.guard_keys_model_id(model)) -%}
    {%- if personalization.touched_users_every_user(node.config.get('touched_every_user', false)) -%}
        {{ return('true') }}
    {%- endif -%}
    {%- set touched = graph.nodes.get('model.personalization.int_touched_users') -%}
    {{ return('(canonical_user_id in (select canonical_user_id from ' ~ touched.relation_name
        ~ ') or canonical_user_id is null)') }}
{%- endmacro %}


{#- The key columns of a row as one text, for the failure's row_key. -#}
{% macro guard_keys_text(columns, alias) -%}
    {%- if columns | length == 1 -%}
        cast({{ alias }}.{{ columns[0] }} as {{ dbt.type_string() }})
    {%- else -%}
        concat_ws(', '
        {%- for column in columns -%}
            , coalesce(cast({{ alias }}.{{ column }} as {{ dbt.type_string() }}), 'null')
        {%- endfor -%})
    {%- endif -%}
{%- endmacro %}
