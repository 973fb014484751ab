{#- Segments as code: compiling validated rules into SQL (see docs/segments.md).

    Every rule compiles to a SQL boolean in three-valued logic: true (member), false, null
    (pending). SQL's and/or/not on nulls are exactly Kleene's logic, so all/any/not need nothing
    else; each leaf decides when it is pending. The compiler collects the leaves into a registry:
      counts   - event conditions, counted in one pass over the events (a column each)
      follows  - event conditions with not_followed_by (one CTE each)
      funnels  - ordered funnels (a chain of semi-joins, one CTE each)
      clusters - cluster conditions (one CTE each)
    Identical leaves (same JSON) share one column. -#}

{% macro segment_compile(definitions) -%}
    {%- set registry = {'keys': {}, 'counts': [], 'follows': [], 'funnels': [], 'clusters': []} -%}
    {%- set by_name = {} -%}
    {%- for segment in definitions -%}
        {%- do by_name.update({segment.name: segment}) -%}
    {%- endfor -%}
    {%- set segments = [] -%}
    {%- for segment in definitions -%}
        {%- do segments.append({
            'name': segment.name,
            'column': 'segment_' ~ loop.index,
            'expression': personalization.segment_rule_sql(segment.rule, registry, by_name),
        }) -%}
    {%- endfor -%}
    {%- do registry.update({'segments': segments}) -%}
    {{ return(registry) }}
{%- endmacro %}


{#- Register a leaf once; returns its id. -#}
{% macro segment_leaf_id(registry, kind, spec) -%}
    {%- set key = kind ~ ':' ~ tojson(spec, sort_keys=true) -%}
    {%- if key not in registry['keys'] -%}
        {%- set leaf_id = registry['keys'] | length + 1 -%}
        {%- do registry['keys'].update({key: leaf_id}) -%}
        {%- do registry[kind].append({'id': leaf_id, 'spec': spec}) -%}
    {%- endif -%}
    {{ return(registry['keys'][key]) }}
{%- endmacro %}


{% macro segment_rule_sql(rule, registry, by_name) -%}
    {%- set key = (rule.keys() | list)[0] -%}
    {%- set spec = rule[key] -%}
    {%- if key in ['all', 'any'] -%}
        {%- set parts = [] -%}
        {%- for child in spec -%}
            {%- do parts.append(personalization.segment_rule_sql(child, registry, by_name)) -%}
        {%- endfor -%}
        {{ return('(' ~ parts | join(' and ' if key == 'all' else ' or ') ~ ')') }}
    {%- elif key == 'not' -%}
        {{ return('(not ' ~ personalization.segment_rule_sql(spec, registry, by_name) ~ ')') }}
    {%- elif key == 'segment' -%}
        {{ return(personalization.segment_rule_sql(by_name[spec].rule, registry, by_name)) }}
    {%- elif key == 'trait' -%}
        {{ return(personalization.segment_trait_sql(spec)) }}
    {%- elif key == 'cluster' -%}
        {%- set leaf_id = personalization.segment_leaf_id(registry, 'clusters', spec) -%}
        {{ return('(leaf_' ~ leaf_id ~ '_cluster.canonical_user_id is not null)') }}
    {%- elif key == 'funnel' -%}
        {%- set leaf_id = personalization.segment_leaf_id(registry, 'funnels', spec) -%}
        {{ return('(case when leaf_' ~ leaf_id ~ '_funnel.canonical_user_id is not null then true when '
            ~ personalization.segment_window_open(spec) ~ ' then null else false end)') }}
    {%- elif key == 'event' and spec.get('not_followed_by') is not none -%}
        {%- set leaf_id = personalization.segment_leaf_id(registry, 'follows', spec) -%}
        {%- set lower = 'coalesce(leaf_' ~ leaf_id ~ '_follow.closed_unfollowed, 0)' -%}
        {%- set upper = '(case when ' ~ personalization.segment_window_open(spec) ~ ' then null else coalesce(leaf_'
            ~ leaf_id ~ '_follow.unfollowed, 0) end)' -%}
        {{ return(personalization.segment_count_sql(spec, lower, upper)) }}
    {%- elif key == 'event' and spec.get('aggregate') is not none -%}
        {%- set leaf_id = personalization.segment_leaf_id(registry, 'counts', spec) -%}
        {{ return(personalization.segment_aggregate_condition_sql(spec, 'event_counts.leaf_' ~ leaf_id)) }}
    {%- elif key == 'event' -%}
        {%- set leaf_id = personalization.segment_leaf_id(registry, 'counts', spec) -%}
        {%- set lower = 'coalesce(event_counts.leaf_' ~ leaf_id ~ ', 0)' -%}
        {%- set upper = '(case when ' ~ personalization.segment_window_open(spec) ~ ' then null else ' ~ lower ~ ' end)' -%}
        {{ return(personalization.segment_count_sql(spec, lower, upper)) }}
    {%- endif -%}
{%- endmacro %}


{#- Three-valued count condition. `lower` is the count already certain; `upper` what it can still
    become (null = unbounded, while the window is open). True when lower >= min_count and upper
    <= max_count; false when upper < min_count or lower > max_count; pending (null) otherwise. -#}
{% macro segment_count_sql(spec, lower, upper) -%}
    {%- set min_count = spec.get('min_count', 1) -%}
    {%- set max_count = spec.get('max_count') -%}
    {%- set is_true = [lower ~ ' >= ' ~ min_count] -%}
    {%- set is_false = ['coalesce(' ~ upper ~ ' < ' ~ min_count ~ ', false)'] -%}
    {%- if max_count is not none -%}
        {%- do is_true.append('coalesce(' ~ upper ~ ' <= ' ~ max_count ~ ', false)') -%}
        {%- do is_false.append(lower ~ ' > ' ~ max_count) -%}
    {%- endif -%}
    {{ return('(case when ' ~ is_true | join(' and ') ~ ' then true when ' ~ is_false | join(' or ')
        ~ ' then false end)') }}
{%- endmacro %}


{#- The per-user aggregate column of an event condition, over `alias` (one pass over the events):
    count(...) of the matching events in the window, or function(property) of them. -#}
{% macro segment_event_column_sql(spec, alias) -%}
    {%- set matches = personalization.segment_event_match_sql(spec, alias) -%}
    {%- set window = personalization.segment_window_sql(spec, alias ~ '.event_at') -%}
    {%- set condition = matches if window == 'true' else matches ~ '\n                and ' ~ window -%}
    {%- set aggregate = spec.get('aggregate') -%}
    {%- if aggregate is none -%}
        {{ return('count(case\n            when ' ~ condition ~ '\n                then 1\n        end)') }}
    {%- endif -%}
    {%- set text = personalization.json_text(alias ~ '.properties', '$.' ~ aggregate.property) -%}
    {%- if aggregate.function == 'count_distinct' -%}
        {{ return('count(distinct case\n            when ' ~ condition ~ '\n                then ' ~ text ~ '\n        end)') }}
    {%- endif -%}
    {{ return(aggregate.function ~ '(case\n            when ' ~ condition ~ '\n                then '
        ~ personalization.try_cast(text, 'double') ~ '\n        end)') }}
{%- endmacro %}


{#- An aggregate condition: `function(property) op value` over the matching events. No matching
    event: sum and count_distinct are 0, avg/min/max have no value (the condition is false).
    Pending while a `between` window is still open at as_of. -#}
{% macro segment_aggregate_condition_sql(spec, column) -%}
    {%- set aggregate = spec.aggregate -%}
    {%- set value = 'coalesce(' ~ column ~ ', 0)' if aggregate.function == 'sum' else column -%}
    {%- set comparison = personalization.segment_comparison_sql(value, aggregate.op, aggregate.value) -%}
    {%- set window_open = personalization.segment_window_open(spec) -%}
    {%- if window_open == 'false' -%}
        {{ return(comparison) }}
    {%- endif -%}
    {{ return('(case when ' ~ window_open ~ ' then null else ' ~ comparison ~ ' end)') }}
{%- endmacro %}


{#- SQL literal of a YAML scalar. -#}
{% macro segment_literal(value) -%}
    {%- if value is boolean -%}
        {{ return('true' if value else 'false') }}
    {%- elif value is number -%}
        {{ return(value | string) }}
    {%- else -%}
        {{ return("'" ~ (value | string | replace("'", "''")) ~ "'") }}
    {%- endif -%}
{%- endmacro %}


{#- A comparison `expression <op> value` (op from the rule language), null-safe to false. -#}
{% macro segment_comparison_sql(expression, op, value) -%}
    {%- if op == 'is_set' -%}
        {{ return('(' ~ expression ~ ' is not null)') }}
    {%- elif op == 'is_not_set' -%}
        {{ return('(' ~ expression ~ ' is null)') }}
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
        {{ return('coalesce(' ~ expression ~ ' > ' ~ personalization.segment_window_start(value) ~ ' and '
            ~ expression ~ ' <= ' ~ personalization.as_of() ~ ', false)') }}
    {%- elif op == 'not_within' -%}
        {{ return('coalesce(' ~ expression ~ ' <= ' ~ personalization.segment_window_start(value) ~ ', false)') }}
    {%- else -%}
        {{ return('coalesce(' ~ expression ~ ' ' ~ op ~ ' ' ~ personalization.segment_literal(value) ~ ', false)') }}
    {%- endif -%}
{%- endmacro %}


{% macro segment_trait_sql(spec) -%}
    {{ return(personalization.segment_comparison_sql('profiles.' ~ spec.name, spec.op, spec.get('value'))) }}
{%- endmacro %}


{#- as_of minus a duration ('24h'): the exclusive start of a `within` window. -#}
{% macro segment_window_start(duration) -%}
    {%- set minutes = personalization.segment_window_minutes('?', duration, 'within') -%}
    {{ return(dbt.dateadd('minute', -minutes, personalization.as_of())) }}
{%- endmacro %}


{#- The window of an event condition or funnel on `column`:
    within D     -> as_of - D < column <= as_of
    between from A to B (durations ago) -> as_of - A < column <= as_of - B
    between S, E -> S <= column < E (and column <= as_of, as for every event)
    none         -> column <= as_of (all history) -#}
{% macro segment_window_sql(spec, column) -%}
    {%- if spec.get('between') is mapping and 'from' in spec.between -%}
        {{ return('(' ~ column ~ ' > ' ~ personalization.segment_window_start(spec.between['from']) ~ ' and '
            ~ column ~ ' <= ' ~ personalization.segment_window_start(spec.between.to) ~ ')') }}
    {%- elif spec.get('within') is not none -%}
        {{ return('(' ~ column ~ ' > ' ~ personalization.segment_window_start(spec.within) ~ ')') }}
    {%- elif spec.get('between') is not none -%}
        {{ return('(' ~ column ~ ' >= ' ~ personalization.to_utc_timestamp(personalization.segment_literal(spec.between.start | string))
            ~ ' and ' ~ column ~ ' < ' ~ personalization.to_utc_timestamp(personalization.segment_literal(spec.between.end | string)) ~ ')') }}
    {%- else -%}
        {{ return('true') }}
    {%- endif -%}
{%- endmacro %}


{#- True while the window has not closed at as_of (a `between` ending after as_of). -#}
{% macro segment_window_open(spec) -%}
    {%- if spec.get('between') is not none and 'start' in spec.between -%}
        {{ return('(' ~ personalization.to_utc_timestamp(personalization.segment_literal(spec.between.end | string))
            ~ ' > ' ~ personalization.as_of() ~ ')') }}
    {%- else -%}
        {{ return('false') }}
    {%- endif -%}
{%- endmacro %}


{#- Which events an event reference ({name} / {type[, name]} plus `where`) matches, on `alias`. -#}
{% macro segment_event_match_sql(spec, alias) -%}
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
        {%- if event_type != 'track' and filter.property == 'name' -%}
            {%- set expression = alias ~ '.page_name' -%}
        {%- elif filter.op in ['is_set', 'is_not_set'] -%}
            {%- set expression = "nullif(" ~ personalization.json_kind(alias ~ '.properties', path) ~ ", 'null')" -%}
        {%- elif first is number and first is not boolean -%}
            {%- set expression = personalization.try_cast(personalization.json_text(alias ~ '.properties', path), 'double') -%}
        {%- else -%}
            {%- set expression = personalization.json_text(alias ~ '.properties', path) -%}
        {%- endif -%}
        {%- if value is boolean -%}
            {%- set value = 'true' if value else 'false' -%}
        {%- endif -%}
        {%- do conditions.append(personalization.segment_comparison_sql(expression, filter.op, value)) -%}
    {%- endfor -%}
    {{ return('(' ~ conditions | join(' and ') ~ ')') }}
{%- endmacro %}
