{#- Segments as code: compiling validated rules into readable SQL (see docs/segments.md).

    Every rule compiles to a SQL boolean in three-valued logic: true (member), false, null
    (pending). SQL's and/or/not on nulls are exactly Kleene's logic, so all/any/not need nothing
    else; each condition decides when it is pending. segment_compile returns a registry that
    fct_segment_membership renders:
      bounds     - as_of minus each duration used by a window, computed once in `params`
      counts     - event conditions (counts or aggregates), one column each of one pass over events
      follows    - event conditions with not_followed_by (anchors + follow-ups, two CTEs each)
      funnels    - ordered funnels (a chain of semi-joins, one CTE per step)
      clusters   - cluster conditions (a lookup CTE each)
      conditions - every leaf as a named three-valued column, with the YAML nodes it came from
      segments   - one boolean expression per segment over the condition names
    Identical leaves (same JSON) share one condition. -#}

{% macro segment_compile(definitions) -%}
    {%- set registry = {
        'keys': {}, 'names': [], 'bounds': {}, 'conditions': [], 'counts': [], 'follows': [],
        'funnels': [], 'clusters': [], 'expressions': {}, 'segments': [],
    } -%}
    {%- set by_name = {} -%}
    {%- for segment in definitions -%}
        {%- do by_name.update({segment.name: segment}) -%}
    {%- endfor -%}
    {%- for segment in definitions -%}
        {%- do registry.segments.append({
            'name': segment.name,
            'expression': personalization.segment_expression(segment.name, registry, by_name),
        }) -%}
    {%- endfor -%}
    {{ return(registry) }}
{%- endmacro %}


{#- The expression of a segment, compiled once (segment references reuse it). -#}
{% macro segment_expression(name, registry, by_name) -%}
    {%- if name not in registry.expressions -%}
        {%- set expression = personalization.segment_rule_sql(by_name[name].rule, registry, by_name, name, 'rule') -%}
        {%- do registry.expressions.update({name: expression}) -%}
    {%- endif -%}
    {{ return(registry.expressions[name]) }}
{%- endmacro %}


{% macro segment_rule_sql(rule, registry, by_name, segment_name, path) -%}
    {%- set key = (rule.keys() | list)[0] -%}
    {%- set spec = rule[key] -%}
    {%- if key in ['all', 'any'] -%}
        {%- set parts = [] -%}
        {%- for child in spec -%}
            {%- do parts.append(personalization.segment_rule_sql(
                child, registry, by_name, segment_name, path ~ '.' ~ key ~ '[' ~ loop.index0 ~ ']')) -%}
        {%- endfor -%}
        {%- set joiner = ' and ' if key == 'all' else ' or ' -%}
        {%- if (parts | join(joiner)) | length > 80 -%}
            {%- set joiner = '\n            ' ~ joiner | trim ~ ' ' -%}
        {%- endif -%}
        {{ return('(' ~ parts | join(joiner) ~ ')') }}
    {%- elif key == 'not' -%}
        {{ return('(not ' ~ personalization.segment_rule_sql(spec, registry, by_name, segment_name, path ~ '.not') ~ ')') }}
    {%- elif key == 'segment' -%}
        {{ return(personalization.segment_expression(spec, registry, by_name)) }}
    {%- else -%}
        {{ return(personalization.segment_leaf(registry, key, spec, segment_name ~ ': ' ~ path ~ '.' ~ key)) }}
    {%- endif -%}
{%- endmacro %}


{#- Register a leaf condition once (identical specs share it); returns its column name. -#}
{% macro segment_leaf(registry, key, spec, use) -%}
    {%- set lookup = key ~ ':' ~ tojson(spec, sort_keys=true) -%}
    {%- if lookup not in registry['keys'] -%}
        {%- set base = personalization.segment_condition_name(key, spec) -%}
        {%- set name = base if base not in registry.names else base ~ '_' ~ (registry.names | length + 1) -%}
        {%- do registry.names.append(name) -%}
        {%- do registry['keys'].update({lookup: name}) -%}
        {%- set leaf = {'name': name, 'key': key, 'spec': spec, 'uses': []} -%}
        {%- do leaf.update(personalization.segment_leaf_sql(registry, leaf)) -%}
        {%- do registry.conditions.append(leaf) -%}
    {%- endif -%}
    {%- set name = registry['keys'][lookup] -%}
    {%- for leaf in registry.conditions if leaf.name == name -%}
        {%- do leaf.uses.append(use) -%}
    {%- endfor -%}
    {{ return(name) }}
{%- endmacro %}


{#- A readable column name for a leaf: product_added_7d, sum_revenue_order_completed_7d,
    trait_revenue_gte_1000, funnel_product_viewed_to_checkout_started_7d, cluster_kmeans_3. -#}
{% macro segment_condition_name(key, spec) -%}
    {%- set words = {'=': 'eq', '!=': 'ne', '<': 'lt', '<=': 'lte', '>': 'gt', '>=': 'gte'} -%}
    {%- set parts = [] -%}
    {%- if key == 'event' -%}
        {%- set aggregate = spec.get('aggregate') -%}
        {%- if aggregate is not none -%}
            {%- do parts.extend([aggregate.function, aggregate.property]) -%}
        {%- endif -%}
        {%- do parts.append(spec.get('name') or spec.get('type')) -%}
        {%- for filter in spec.get('where') or [] -%}
            {%- set value = filter.get('value') -%}
            {%- do parts.extend([filter.property, words.get(filter.op, filter.op)]) -%}
            {%- if value is not none and (value is string or value is number) -%}
                {%- do parts.append(value | string) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- do parts.extend(personalization.segment_window_words(spec)) -%}
        {%- if spec.get('min_count', 1) != 1 -%}
            {%- do parts.extend(['min', spec.min_count | string]) -%}
        {%- endif -%}
        {%- if spec.get('max_count') is not none -%}
            {%- do parts.extend(['max', spec.max_count | string]) -%}
        {%- endif -%}
        {%- if spec.get('not_followed_by') is not none -%}
            {%- do parts.extend(['not_followed_by', spec.not_followed_by.get('name') or spec.not_followed_by.type,
                spec.not_followed_by.within]) -%}
        {%- endif -%}
    {%- elif key == 'funnel' -%}
        {%- do parts.extend(['funnel', spec.steps[0].get('name') or spec.steps[0].type, 'to',
            spec.steps[-1].get('name') or spec.steps[-1].type]) -%}
        {%- do parts.extend(personalization.segment_window_words(spec)) -%}
    {%- elif key == 'trait' -%}
        {%- do parts.extend(['trait', spec.name, words.get(spec.op, spec.op)]) -%}
        {%- if spec.get('value') is string or spec.get('value') is number -%}
            {%- do parts.append(spec.value | string) -%}
        {%- elif spec.op == 'between' -%}
            {%- do parts.extend([spec.value['from'], 'to', spec.value.to, 'ago']) -%}
        {%- endif -%}
    {%- elif key == 'cluster' -%}
        {%- do parts.extend(['cluster', spec.get('method', 'kmeans'), spec.get('cluster_id', spec.get('cluster_name')) | string]) -%}
    {%- endif -%}
    {%- set name = modules.re.sub('[^a-z0-9]+', '_', parts | join('_') | lower) | trim('_') -%}
    {%- if not modules.re.match('[a-z]', name) -%}
        {%- set name = 'c_' ~ name -%}
    {%- endif -%}
    {{ return(name[:60] | trim('_')) }}
{%- endmacro %}


{% macro segment_window_words(spec) -%}
    {%- set between = spec.get('between') -%}
    {%- if spec.get('within') is not none -%}
        {{ return([spec.within]) }}
    {%- elif between is mapping and 'from' in between -%}
        {{ return([between['from'], 'to', between.to, 'ago']) }}
    {%- elif between is mapping -%}
        {{ return(['from', between.start[:10], 'to', between.end[:10]]) }}
    {%- endif -%}
    {{ return([]) }}
{%- endmacro %}


{#- The SQL a leaf needs: its three-valued condition, and the pieces of its CTE or column. -#}
{% macro segment_leaf_sql(registry, leaf) -%}
    {%- set spec = leaf.spec -%}
    {%- set name = leaf.name -%}
    {%- if leaf.key == 'trait' -%}
        {{ return({'condition': personalization.segment_comparison_sql('profiles.' ~ spec.name, spec.op,
            spec.get('value'), registry)}) }}
    {%- elif leaf.key == 'cluster' -%}
        {%- do registry.clusters.append(leaf) -%}
        {{ return({'condition': name ~ '.canonical_user_id is not null'}) }}
    {%- elif leaf.key == 'funnel' -%}
        {%- do registry.funnels.append(leaf) -%}
        {%- set steps = [] -%}
        {%- for step in spec.steps -%}
            {%- do steps.append(personalization.segment_event_filter_sql(registry, spec, step, 'step')) -%}
        {%- endfor -%}
        {%- set gap = personalization.segment_window_minutes('?', spec.max_gap, 'max_gap') if spec.get('max_gap') else none -%}
        {%- set reached = name ~ '.canonical_user_id is not null' -%}
        {%- set open = personalization.segment_window_open(spec) -%}
        {{ return({
            'steps': steps,
            'gap_end': personalization.segment_plus_minutes('previous.event_at', gap) if gap else none,
            'condition': reached if open is none else 'case\n            when ' ~ reached ~ ' then true\n            when '
                ~ open ~ ' then null\n            else false\n        end',
        }) }}
    {%- elif spec.get('not_followed_by') is not none -%}
        {%- do registry.follows.append(leaf) -%}
        {%- set gap = personalization.segment_window_minutes('?', spec.not_followed_by.within, 'within') -%}
        {{ return({
            'anchor_filter': personalization.segment_event_filter_sql(registry, spec, spec, 'anchor'),
            'follow_match': personalization.segment_event_match_sql(spec.not_followed_by, 'follow', '\n            '),
            'follow_end': personalization.segment_plus_minutes('anchor.event_at', gap),
            'condition': personalization.segment_count_sql(spec, 'coalesce(' ~ name ~ '.closed_unfollowed, 0)',
                'coalesce(' ~ name ~ '.unfollowed, 0)'),
        }) }}
    {%- else -%}
        {%- do registry.counts.append(leaf) -%}
        {%- set column = 'event_counts.' ~ name -%}
        {%- set condition = personalization.segment_aggregate_condition_sql(spec, column, registry)
            if spec.get('aggregate') is not none
            else personalization.segment_count_sql(spec, 'coalesce(' ~ column ~ ', 0)', 'coalesce(' ~ column ~ ', 0)') -%}
        {{ return({
            'column': personalization.segment_event_column_sql(registry, spec, 'events'),
            'condition': condition,
        }) }}
    {%- endif -%}
{%- endmacro %}


{#- Three-valued count condition. `lower` is the count already certain; `upper` what it can
    still become once open windows are set aside (for not_followed_by: occurrences whose
    follow-up window is still open count towards upper only). While a `between` window is open
    upper is unbounded. True when lower >= min_count and upper <= max_count; false when upper <
    min_count or lower > max_count; pending (null) otherwise. Decided conditions are plain
    comparisons; a `case` appears only where a condition can be pending. -#}
{% macro segment_count_sql(spec, lower, upper) -%}
    {%- set min_count = spec.get('min_count', 1) -%}
    {%- set max_count = spec.get('max_count') -%}
    {%- set is_true = [lower ~ ' >= ' ~ min_count] -%}
    {%- set is_false = [upper ~ ' < ' ~ min_count] -%}
    {%- if max_count is not none -%}
        {%- do is_true.append(upper ~ ' <= ' ~ max_count) -%}
        {%- do is_false.append(lower ~ ' > ' ~ max_count) -%}
    {%- endif -%}
    {%- set indent = '\n            ' -%}
    {%- set close = '\n        end' -%}
    {%- if lower == upper -%}
        {%- set closed = is_true | join(' and ') -%}
    {%- else -%}
        {%- set closed = 'case' ~ indent ~ 'when ' ~ is_true | join(' and ') ~ ' then true' ~ indent ~ 'when '
            ~ is_false | join(' or ') ~ ' then false' ~ close -%}
    {%- endif -%}
    {%- set open = personalization.segment_window_open(spec) -%}
    {%- if open is none -%}
        {{ return(closed) }}
    {%- endif -%}
    {#- open window: upper is unbounded, so only lower decides -#}
    {%- set while_open = 'case when ' ~ lower ~ ' > ' ~ max_count ~ ' then false end' if max_count is not none
        else 'case when ' ~ lower ~ ' >= ' ~ min_count ~ ' then true end' -%}
    {{ return('case' ~ indent ~ 'when ' ~ open ~ ' then ' ~ while_open ~ indent ~ 'else ' ~ closed ~ close) }}
{%- endmacro %}


{#- The per-user column of an event condition over `alias` (one pass over the events): count of
    the matching events in the window, or function(property) of them. -#}
{% macro segment_event_column_sql(registry, spec, alias) -%}
    {%- set filter = personalization.segment_event_filter_sql(registry, spec, spec, alias) -%}
    {%- set aggregate = spec.get('aggregate') -%}
    {%- if aggregate is none -%}
        {{ return('count(case\n            when ' ~ filter ~ '\n                then 1\n        end)') }}
    {%- endif -%}
    {%- set text = personalization.json_text(alias ~ '.properties', '$.' ~ aggregate.property) | trim -%}
    {%- if aggregate.function == 'count_distinct' -%}
        {{ return('count(distinct case\n            when ' ~ filter ~ '\n                then ' ~ text ~ '\n        end)') }}
    {%- endif -%}
    {{ return(personalization.order_free_aggregate(aggregate.function, 'case\n            when ' ~ filter
        ~ '\n                then ' ~ personalization.try_cast(text, 'double') | trim ~ '\n        end')) }}
{%- endmacro %}


{#- An aggregate condition: `function(property) op value` over the matching events. No matching
    event: sum and count_distinct are 0, avg/min/max have no value (the condition is false).
    Pending while a `between` window is still open at as_of. -#}
{% macro segment_aggregate_condition_sql(spec, column, registry) -%}
    {%- set aggregate = spec.aggregate -%}
    {%- if aggregate.function in ['sum', 'count_distinct'] -%}
        {#- zero without matching events (or without any event: the left join): a plain comparison -#}
        {%- set value = 'coalesce(' ~ column ~ ', 0)' -%}
        {%- set comparison = value ~ ' ' ~ aggregate.op ~ ' ' ~ personalization.segment_literal(aggregate.value) -%}
    {%- else -%}
        {%- set comparison = personalization.segment_comparison_sql(column, aggregate.op, aggregate.value, registry) -%}
    {%- endif -%}
    {%- set open = personalization.segment_window_open(spec) -%}
    {%- if open is none -%}
        {{ return(comparison) }}
    {%- endif -%}
    {%- set indent = '\n            ' -%}
    {{ return('case' ~ indent ~ 'when ' ~ open ~ ' then null' ~ indent ~ 'else ' ~ comparison ~ '\n        end') }}
{%- endmacro %}


{#- The match and the window of an event reference on `alias`, one condition per line. -#}
{% macro segment_event_filter_sql(registry, window_spec, spec, alias) -%}
    {%- set indent = '\n                ' if alias == 'events' else '\n        ' -%}
    {%- set parts = [personalization.segment_event_match_sql(spec, alias, indent)] -%}
    {%- set window = personalization.segment_window_sql(window_spec, alias ~ '.event_at', registry) -%}
    {%- if window is not none -%}
        {%- do parts.extend(window.split(' and ')) -%}
    {%- endif -%}
    {{ return(parts | join(indent ~ 'and ')) }}
{%- endmacro %}


{#- as_of minus a duration, as a column of the `params` CTE (computed once). -#}
{% macro segment_bound(registry, duration) -%}
    {%- set column = 'as_of_minus_' ~ duration -%}
    {%- if column not in registry.bounds -%}
        {%- set minutes = personalization.segment_window_minutes('?', duration, 'within') -%}
        {%- do registry.bounds.update({column: personalization.segment_plus_minutes('as_of', -minutes)}) -%}
    {%- endif -%}
    {{ return('params.' ~ column) }}
{%- endmacro %}


{#- `expression` plus a number of minutes, on one line. -#}
{% macro segment_plus_minutes(expression, minutes) -%}
    {{ return(modules.re.sub('\\s+', ' ', dbt.dateadd('minute', minutes, expression)) | trim) }}
{%- endmacro %}


{#- The window of an event condition or funnel on `column` (none when it has no window):
    within D                            -> as_of - D < column (<= as_of, as for every event)
    between {from: A, to: B} (ago)      -> as_of - A < column <= as_of - B
    between {start: S, end: E} (ISO)    -> S <= column < E -#}
{% macro segment_window_sql(spec, column, registry) -%}
    {%- set between = spec.get('between') -%}
    {%- if spec.get('within') is not none -%}
        {{ return(column ~ ' > ' ~ personalization.segment_bound(registry, spec.within)) }}
    {%- elif between is mapping and 'from' in between -%}
        {{ return(column ~ ' > ' ~ personalization.segment_bound(registry, between['from']) ~ ' and '
            ~ column ~ ' <= ' ~ personalization.segment_bound(registry, between.to)) }}
    {%- elif between is not none -%}
        {{ return(column ~ ' >= ' ~ personalization.segment_timestamp(between.start) ~ ' and '
            ~ column ~ ' < ' ~ personalization.segment_timestamp(between.end)) }}
    {%- endif -%}
    {{ return(none) }}
{%- endmacro %}


{% macro segment_timestamp(text) -%}
    {{ return(personalization.to_utc_timestamp(personalization.segment_literal(text | string)) | trim) }}
{%- endmacro %}


{#- True while the window has not closed at as_of (a `between {start, end}` ending after as_of);
    none when the window is always closed at as_of. -#}
{% macro segment_window_open(spec) -%}
    {%- set between = spec.get('between') -%}
    {%- if between is mapping and 'end' in between -%}
        {{ return(personalization.segment_timestamp(between.end) ~ ' > params.as_of') }}
    {%- endif -%}
    {{ return(none) }}
{%- endmacro %}


{#- SQL literal of a YAML scalar: booleans and numbers bare, text through the project's one
    quoting function (quoted_literal; personalization.segments.core.sql_literal in Python). -#}
{% macro segment_literal(value) -%}
    {%- if value is boolean -%}
        {{ return('true' if value else 'false') }}
    {%- elif value is number -%}
        {{ return(value | string) }}
    {%- else -%}
        {{ return(personalization.quoted_literal(value)) }}
    {%- endif -%}
{%- endmacro %}


{#- A comparison `expression <op> value` (op from the rule language), null-safe to false. -#}
{% macro segment_comparison_sql(expression, op, value, registry=none) -%}
    {%- if op == 'is_set' -%}
        {{ return(expression ~ ' is not null') }}
    {%- elif op == 'is_not_set' -%}
        {{ return(expression ~ ' is null') }}
    {%- elif op in ['in', 'not_in'] -%}
        {%- set literals = [] -%}
        {%- for item in value -%}
            {%- do literals.append(personalization.segment_literal(item)) -%}
        {%- endfor -%}
        {{ return('coalesce(' ~ expression ~ (' not' if op == 'not_in' else '') ~ ' in (' ~ literals | join(', ') ~ '), false)') }}
    {%- elif op == 'contains' -%}
        {{ return('coalesce(position(' ~ personalization.segment_literal(value | string) ~ ' in cast(' ~ expression
            ~ ' as ' ~ dbt.type_string() ~ ')) > 0, false)') }}
    {%- elif op == 'within' -%}
        {{ return(personalization.segment_coalesce_and(
            expression ~ ' > ' ~ personalization.segment_bound(registry, value),
            expression ~ ' <= params.as_of')) }}
    {%- elif op == 'between' -%}
        {#- relative: as_of - from < expression <= as_of - to -#}
        {{ return(personalization.segment_coalesce_and(
            expression ~ ' > ' ~ personalization.segment_bound(registry, value['from']),
            expression ~ ' <= ' ~ personalization.segment_bound(registry, value.to))) }}
    {%- elif op == 'not_within' -%}
        {{ return('coalesce(' ~ expression ~ ' <= ' ~ personalization.segment_bound(registry, value) ~ ', false)') }}
    {%- else -%}
        {{ return('coalesce(' ~ expression ~ ' ' ~ op ~ ' ' ~ personalization.segment_literal(value) ~ ', false)') }}
    {%- endif -%}
{%- endmacro %}


{#- `coalesce(first and second, false)`, one operand per line (a condition column). -#}
{% macro segment_coalesce_and(first, second) -%}
    {{ return('coalesce(\n            ' ~ first ~ '\n            and ' ~ second ~ ',\n            false\n        )') }}
{%- endmacro %}


{#- Which events an event reference ({name} / {type[, name]} plus `where`) matches, on `alias`;
    one condition per line (`indent` starts each continuation line). -#}
{% macro segment_event_match_sql(spec, alias, indent='\n                ') -%}
    {%- set event_type = spec.get('type', 'track') -%}
    {%- set conditions = [alias ~ ".event_type = '" ~ event_type ~ "'"] -%}
    {%- if event_type == 'track' -%}
        {%- do conditions.append(alias ~ '.event_name = ' ~ personalization.segment_literal(spec.name)) -%}
    {%- elif spec.get('name') is not none -%}
        {%- do conditions.append(alias ~ '.page_name = ' ~ personalization.segment_literal(spec.name)) -%}
    {%- endif -%}
    {#- The comparison follows the value's YAML type (validation has checked the property against
        the tracking plan): a number compares numerically, anything else as text. -#}
    {%- for filter in spec.get('where') or [] -%}
        {%- set value = filter.get('value') -%}
        {%- set first = (value | first) if value is iterable and value is not string and value | length > 0 else value -%}
        {%- set path = '$.' ~ filter.property -%}
        {%- if '[].' in filter.property -%}
            {#- some item of the array satisfies the comparison -#}
            {%- set array, field = filter.property.split('[].', 1) -%}
            {%- set item = personalization.try_cast('item', 'double') | trim if first is number and first is not boolean else 'item' -%}
            {%- do conditions.append(personalization.segment_array_any(alias ~ '.properties', '$.' ~ array ~ '[*].' ~ field,
                personalization.segment_comparison_sql(item, filter.op, value), indent)) -%}
        {%- elif event_type != 'track' and filter.property == 'name' -%}
            {%- set expression = alias ~ '.page_name' -%}
        {%- elif filter.op in ['is_set', 'is_not_set'] -%}
            {%- set expression = "nullif(" ~ personalization.json_kind(alias ~ '.properties', path) | trim ~ ", 'null')" -%}
        {%- elif first is number and first is not boolean -%}
            {%- set expression = personalization.try_cast(personalization.json_text(alias ~ '.properties', path) | trim, 'double') | trim -%}
        {%- else -%}
            {%- set expression = personalization.json_text(alias ~ '.properties', path) | trim -%}
        {%- endif -%}
        {%- if value is boolean -%}
            {%- set value = 'true' if value else 'false' -%}
        {%- endif -%}
        {%- if '[].' not in filter.property -%}
            {%- do conditions.append(personalization.segment_comparison_sql(expression, filter.op, value)) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(conditions | join(indent ~ 'and ')) }}
{%- endmacro %}


{#- True when some item of the JSON array at `path` (a wildcard path such as
    '$.products[*].category', one value per item) satisfies `predicate` on `item`. -#}
{% macro segment_array_any(json, path, predicate, indent=' ') -%}
    {{ return(adapter.dispatch('segment_array_any', 'personalization')(json, path, predicate, indent)) }}
{%- endmacro %}

{% macro duckdb__segment_array_any(json, path, predicate, indent) -%}
    {{ return('coalesce(len(list_filter(' ~ indent ~ '    ' ~ personalization.json_text(json, path) | trim ~ ','
        ~ indent ~ '    lambda item: ' ~ predicate ~ indent ~ ')) > 0, false)') }}
{%- endmacro %}

{#- Spark's get_json_object returns a wildcard path's matches as a JSON array, but a single
    match as that one JSON value ('"games"', not '["games"]'): it is read as an array of one. -#}
{% macro spark__segment_array_any(json, path, predicate, indent) -%}
    {%- set matches = personalization.json_text(json, path) | trim -%}
    {{ return('coalesce(exists(' ~ indent ~ '    coalesce(from_json(' ~ matches
        ~ ", 'array<string>'), from_json('[' || " ~ matches ~ " || ']', 'array<string>')),"
        ~ indent ~ '    item -> ' ~ predicate ~ indent ~ '), false)') }}
{%- endmacro %}
