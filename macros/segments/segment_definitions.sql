{#- Segments as code: loading and validating the definitions in models/marts/segments/segments.yml
    (config.meta.segments of the model fct_segment_membership, which compiles them). See docs/segments.md for the rule language.

    The dbt var `segment_definitions` (a list in the same shape) replaces the file: tests feed
    definitions through --vars or a unit test's overrides without editing the file.
    Validation runs at compile time, before any SQL: every problem raises a compiler error naming
    the segment ("segment 'cart_abandoners': unknown event 'Product Addded' ..."). -#}

{% macro segment_definitions() -%}
    {#- dbt renders every model once while parsing (execute false): the rules are compiled only
        at execution, after validate_segments (compiling an unvalidated var at parse time gave
        raw Jinja errors such as "'str object' has no attribute 'get'"). -#}
    {%- if not execute -%}
        {{ return([]) }}
    {%- endif -%}
    {#- read and validated once per invocation (invocation_cache) -#}
    {%- set cache = personalization.invocation_cache() -%}
    {%- if 'segment_definitions' in cache -%}
        {{ return(cache['segment_definitions']) }}
    {%- endif -%}
    {%- set override = var('segment_definitions', none) -%}
    {%- if override is not none -%}
        {%- set definitions = override -%}
    {%- else -%}
        {%- set node = graph.nodes.get('model.personalization.fct_segment_membership') -%}
        {%- if node is none or 'segments' not in node.config.meta -%}
            {{ exceptions.raise_compiler_error(
                "segment definitions not found: models/marts/segments/segments.yml must define "
                ~ "config.meta.segments on the model fct_segment_membership") }}
        {%- endif -%}
        {%- set definitions = node.config.meta.segments or [] -%}
    {%- endif -%}
    {#- unit tests compile without the graph: they exercise semantics, compile/run validation -#}
    {%- if execute and personalization.segment_graph_available() -%}
        {%- do personalization.validate_segments_once(definitions) -%}
    {%- endif -%}
    {%- do cache.update({'segment_definitions': definitions}) -%}
    {{ return(definitions) }}
{%- endmacro %}


{#- validate_segments, once per dbt invocation for the same definitions: int_touched_users,
    dim_segments, fct_segment_membership and its delete of touched users each read them, and each validation
    costs a metadata query (the profile columns) and a walk of every rule. The validated keys
    live in `graph`, the one dict every node's context shares (dbt builds it with the manifest,
    so a process reusing a parsed manifest keeps it across invocations): the key is the
    invocation id and the definitions' JSON, so each invocation, with its own vars and tables,
    validates again, and so does a var override. Only a validation that passed is remembered (a
    failing one raises every time). -#}
{% macro validate_segments_once(definitions) -%}
    {%- set key = invocation_id ~ ':' ~ local_md5(tojson(definitions, sort_keys=true)) -%}
    {%- if 'personalization_validated_segments' not in graph -%}
        {%- do graph.update({'personalization_validated_segments': []}) -%}
    {%- endif -%}
    {%- if key not in graph['personalization_validated_segments'] -%}
        {%- do personalization.validate_segments(definitions) -%}
        {%- do graph['personalization_validated_segments'].append(key) -%}
        {%- do log('segment definitions validated: ' ~ key) -%}
    {%- endif -%}
{%- endmacro %}


{% macro segment_graph_available() -%}
    {{ return(graph is mapping and 'nodes' in graph and graph['nodes'] | length > 0) }}
{%- endmacro %}


{#- Where the definitions come from: the var, else the file. -#}
{% macro segment_source() -%}
    {{ return('--vars segment_definitions' if var('segment_definitions', none) is not none
        else 'models/marts/segments/segments.yml') }}
{%- endmacro %}


{#- ' (did you mean 'x'?)' for the option closest to a misspelt value, or '': an option with the
    same characters (a transposition: '=>' is '>='), else the nearest within an edit distance of a
    third of the value's length (at least 1). The Python validator uses difflib, which dbt's Jinja
    lacks; the two agree on the usual typos. -#}
{% macro segment_did_you_mean(value, options) -%}
    {%- if value is not string -%}
        {{ return('') }}
    {%- endif -%}
    {%- for option in options if (option | string | list | sort) == (value | list | sort) -%}
        {{ return(" (did you mean '" ~ option ~ "'?)") }}
    {%- endfor -%}
    {%- set best = {'option': none, 'distance': [1, (value | length) // 3] | max + 1} -%}
    {%- for option in options -%}
        {%- set distance = personalization.segment_edit_distance(value, option | string) -%}
        {%- if distance < best.distance -%}
            {%- do best.update({'option': option, 'distance': distance}) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return('' if best.option is none else " (did you mean '" ~ best.option ~ "'?)") }}
{%- endmacro %}


{#- Levenshtein distance of two strings (insertions, deletions, substitutions). -#}
{% macro segment_edit_distance(a, b) -%}
    {%- set rows = [range(b | length + 1) | list] -%}
    {%- for i in range(a | length) -%}
        {%- set current = [i + 1] -%}
        {%- for j in range(b | length) -%}
            {%- do current.append([rows[-1][j + 1] + 1, current[j] + 1, rows[-1][j] + (0 if a[i] == b[j] else 1)] | min) -%}
        {%- endfor -%}
        {%- do rows.append(current) -%}
    {%- endfor -%}
    {{ return(rows[-1][-1]) }}
{%- endmacro %}


{#- A compiler error naming the source of the definitions and the segment. -#}
{%- macro segment_error(segment_name, message) -%}
    {{ exceptions.raise_compiler_error(personalization.segment_source() ~ ": segment '" ~ segment_name ~ "': "
        ~ message) }}
{%- endmacro %}


{#- Operators, window units and keys of the rule language. -#}
{% macro segment_grammar() -%}
    {{ return({
        'rule_keys': ['all', 'any', 'not', 'event', 'funnel', 'trait', 'segment', 'cluster'],
        'property_ops': ['=', '!=', '<', '<=', '>', '>=', 'in', 'not_in', 'contains', 'is_set', 'is_not_set'],
        'trait_ops': ['=', '!=', '<', '<=', '>', '>=', 'in', 'not_in', 'contains', 'is_set', 'is_not_set', 'within',
            'not_within', 'between'],
        'non_track_types': ['page', 'screen', 'identify'],
        'page_properties': ['name', 'path', 'url', 'title', 'referrer'],
        'event_keys': ['name', 'type', 'where', 'min_count', 'max_count', 'within', 'between', 'not_followed_by',
            'aggregate'],
        'aggregate_keys': ['function', 'property', 'op', 'value'],
        'aggregate_functions': ['sum', 'avg', 'min', 'max', 'count_distinct'],
        'comparison_ops': ['=', '!=', '<', '<=', '>', '>='],
        'array_item_fields': {'product_id': 'string', 'sku': 'string', 'category': 'string', 'name': 'string',
            'brand': 'string', 'variant': 'string', 'price': 'number', 'quantity': 'integer', 'coupon': 'string',
            'position': 'integer'},
        'array_item_ops': ['=', '!=', '<', '<=', '>', '>=', 'in', 'not_in', 'contains'],
        'funnel_keys': ['steps', 'max_gap', 'within', 'between'],
        'step_keys': ['name', 'type', 'where'],
        'follow_keys': ['name', 'type', 'where', 'within'],
        'consents': ['personalization', 'advertising'],
        'segment_keys': ['name', 'description', 'owner', 'rule', 'min_size', 'requires_consent'],
    }) }}
{%- endmacro %}


{#- A duration such as '30m', '24h', '7d', '2w' in minutes; raises on anything else. -#}
{% macro segment_window_minutes(segment_name, value, what) -%}
    {%- set minutes = personalization.duration_minutes(value) -%}
    {%- if minutes is none -%}
        {{ personalization.segment_error(segment_name, "malformed window " ~ what ~ " '" ~ value
            ~ "' (expected a positive number and a unit m, h, d or w, e.g. '24h' or '7d')") }}
    {%- endif -%}
    {{ return(minutes) }}
{%- endmacro %}


{#- The one duration parser of segments and the trait catalogue (personalization.segments.core.
    duration_minutes in Python): '30m', '24h', '7d', '2w' as minutes, in the given units only;
    none when malformed (each caller raises its own message). -#}
{% macro duration_minutes(value, units='mhdw') -%}
    {%- set match = modules.re.fullmatch('([1-9][0-9]*)([a-z])', value) if value is string else none -%}
    {%- if match is none or match.group(2) not in units -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(match.group(1) | int * {'m': 1, 'h': 60, 'd': 1440, 'w': 10080}[match.group(2)]) }}
{%- endmacro %}


{#- An ISO 8601 timestamp as a Python datetime; raises when unparseable. -#}
{% macro segment_parse_time(segment_name, value, what) -%}
    {%- if value is not string -%}
        {{ personalization.segment_error(segment_name, "malformed window: between." ~ what ~ " must be a quoted "
            ~ "ISO 8601 string (YAML reads an unquoted timestamp as a date)") }}
    {%- endif -%}
    {%- set text = value -%}
    {%- if not modules.re.fullmatch('[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9:.]+(Z|[+-][0-9:]+)?)?', text) -%}
        {{ personalization.segment_error(segment_name, "malformed window: between." ~ what ~ " '"
            ~ text ~ "' is not an ISO 8601 timestamp") }}
    {%- endif -%}
    {%- set parsed = modules.datetime.datetime.fromisoformat(text.replace('Z', '+00:00')) -%}
    {%- if parsed.tzinfo is none -%}
        {%- set parsed = parsed.replace(tzinfo=modules.pytz.utc) -%}
    {%- endif -%}
    {{ return(parsed) }}
{%- endmacro %}


{% macro segment_check_window(segment_name, spec) -%}
    {%- if spec.get('within') is not none and spec.get('between') is not none -%}
        {{ personalization.segment_error(segment_name, "malformed window: give `within` or `between`, not both") }}
    {%- endif -%}
    {%- if spec.get('within') is not none -%}
        {%- do personalization.segment_window_minutes(segment_name, spec.within, 'within') -%}
    {%- endif -%}
    {%- if spec.get('between') is mapping and ('from' in spec.between or 'to' in spec.between) -%}
        {#- relative: (as_of - from, as_of - to] -#}
        {%- do personalization.segment_check_keys(segment_name, spec.between, ['from', 'to'], 'a relative between') -%}
        {%- set start = personalization.segment_window_minutes(segment_name, spec.between.get('from'), 'between.from') -%}
        {%- set end = personalization.segment_window_minutes(segment_name, spec.between.get('to'), 'between.to') -%}
        {%- if start <= end -%}
            {{ personalization.segment_error(segment_name, "malformed window: between.from '" ~ spec.between['from']
                ~ "' must reach further back than between.to '" ~ spec.between.to ~ "'") }}
        {%- endif -%}
    {%- elif spec.get('between') is not none -%}
        {%- set between = spec.between -%}
        {%- if between is not mapping or between.get('start') is none or between.get('end') is none -%}
            {{ personalization.segment_error(segment_name, "malformed window: between needs {start: ISO, end: ISO}") }}
        {%- endif -%}
        {%- set start = personalization.segment_parse_time(segment_name, between.start, 'start') -%}
        {%- set end = personalization.segment_parse_time(segment_name, between.end, 'end') -%}
        {%- if start >= end -%}
            {{ personalization.segment_error(segment_name, "malformed window: between.start '" ~ between.start
                ~ "' is not before between.end '" ~ between.end ~ "'") }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}


{% macro segment_check_keys(segment_name, spec, allowed, what) -%}
    {%- if spec is not mapping -%}
        {{ personalization.segment_error(segment_name, what ~ " must be a mapping, got '" ~ spec ~ "'") }}
    {%- endif -%}
    {%- for key in spec -%}
        {%- if key not in allowed -%}
            {{ personalization.segment_error(segment_name, "unknown key '" ~ key ~ "' in " ~ what
                ~ personalization.segment_did_you_mean(key, allowed) ~ " (expected one of " ~ allowed | join(', ') ~ ")") }}
        {%- endif -%}
    {%- endfor -%}
{%- endmacro %}


{#- An event reference ({name} for a track event, {type: page|screen|identify[, name]}) and its
    property filters, checked against the tracking plan. -#}
{% macro segment_check_event_ref(segment_name, spec) -%}
    {%- set grammar = personalization.segment_grammar() -%}
    {%- set plan = personalization.tracking_plan().events -%}
    {%- set event_type = spec.get('type', 'track') -%}
    {%- if event_type == 'track' -%}
        {%- if spec.get('name') is none -%}
            {{ personalization.segment_error(segment_name, "an event condition needs a name (or a type: page, screen, identify)") }}
        {%- endif -%}
        {%- if spec.name not in plan -%}
            {{ personalization.segment_error(segment_name, "unknown event '" ~ spec.name ~ "' (not in the tracking plan)"
                ~ personalization.segment_did_you_mean(spec.name, plan.keys() | list)) }}
        {%- endif -%}
        {%- set properties = (plan[spec.name] or {}).get('properties') or {} -%}
    {%- elif event_type in grammar.non_track_types -%}
        {%- set properties = {} -%}
        {%- for name in grammar.page_properties -%}
            {%- do properties.update({name: {'type': 'string'}}) -%}
        {%- endfor -%}
    {%- else -%}
        {{ personalization.segment_error(segment_name, "unknown event type '" ~ event_type
            ~ "' (expected track, " ~ grammar.non_track_types | join(', ') ~ ")") }}
    {%- endif -%}
    {%- set filters = spec.get('where') or [] -%}
    {%- if filters is string or filters is mapping -%}
        {{ personalization.segment_error(segment_name, "`where` must be a list of {property, op, value}") }}
    {%- endif -%}
    {%- for filter in filters -%}
        {%- do personalization.segment_check_keys(segment_name, filter, ['property', 'op', 'value'], 'a where filter') -%}
        {%- set label = spec.get('name') or event_type -%}
        {%- set properties = personalization.segment_check_array_item(segment_name, filter, label, properties) -%}
        {%- if filter.get('property') not in properties -%}
            {{ personalization.segment_error(segment_name, "unknown property '" ~ filter.get('property')
                ~ "' for event '" ~ label ~ "' (not in the tracking plan)" ~ personalization.segment_did_you_mean(filter.get('property'), properties.keys() | list)) }}
        {%- endif -%}
        {%- if filter.get('op') not in grammar.property_ops -%}
            {{ personalization.segment_error(segment_name, "unknown operator '" ~ filter.get('op')
                ~ "' on property '" ~ filter.property ~ "' (expected one of " ~ grammar.property_ops | join(', ') ~ ")"
                ~ personalization.segment_did_you_mean(filter.get('op'), grammar.property_ops)) }}
        {%- endif -%}
        {%- set property_type = properties[filter.property].get('type', 'string') -%}
        {%- if property_type in ['array', 'object'] and filter.op not in ['is_set', 'is_not_set'] -%}
            {{ personalization.segment_error(segment_name, "operator '" ~ filter.op ~ "' does not apply to the "
                ~ property_type ~ " property '" ~ filter.property ~ "' (only is_set, is_not_set)") }}
        {%- endif -%}
        {%- do personalization.segment_check_value(segment_name, filter.op, filter.get('value'), "property '" ~ filter.property ~ "'") -%}
        {#- the comparison follows the value's type: it must match the property's plan type -#}
        {%- if filter.op not in ['is_set', 'is_not_set'] and property_type in ['number', 'integer', 'string'] -%}
            {%- set values = filter.value if filter.op in ['in', 'not_in'] else [filter.value] -%}
            {%- for item in values -%}
                {%- set is_number = item is number and item is not boolean -%}
                {%- if (property_type == 'string') == is_number -%}
                    {{ personalization.segment_error(segment_name, "property '" ~ filter.property ~ "' of event '"
                        ~ label ~ "' is a " ~ property_type ~ ": value '" ~ item ~ "' does not match ("
                        ~ ("quote it" if property_type == 'string' else "give a number") ~ ")") }}
                {%- endif -%}
            {%- endfor -%}
        {%- endif -%}
    {%- endfor -%}
{%- endmacro %}


{#- A filter on array items (`products[].category`): the array must be an array property of the
    event, the field a Segment product field, the operator one that applies to items. Returns the
    properties with the item path added (typed as its field), so the common checks follow. -#}
{% macro segment_check_array_item(segment_name, filter, label, properties) -%}
    {%- set prop = filter.get('property') -%}
    {%- if prop is not string or '[].' not in prop -%}
        {{ return(properties) }}
    {%- endif -%}
    {%- set grammar = personalization.segment_grammar() -%}
    {%- set array, field = prop.split('[].', 1) -%}
    {%- if (properties.get(array) or {}).get('type') != 'array' -%}
        {{ personalization.segment_error(segment_name, "'" ~ array ~ "' is not an array property of event '"
            ~ label ~ "'") }}
    {%- endif -%}
    {%- if field not in grammar.array_item_fields -%}
        {{ personalization.segment_error(segment_name, "unknown item field '" ~ field ~ "' in '" ~ prop
            ~ "' (expected one of " ~ grammar.array_item_fields.keys() | join(', ') ~ ")") }}
    {%- endif -%}
    {%- if filter.get('op') not in grammar.array_item_ops -%}
        {{ personalization.segment_error(segment_name, "operator '" ~ filter.get('op') ~ "' does not apply to array items '"
            ~ prop ~ "' (expected one of " ~ grammar.array_item_ops | join(', ') ~ ")") }}
    {%- endif -%}
    {%- set with_item = {} -%}
    {%- do with_item.update(properties) -%}
    {%- do with_item.update({prop: {'type': grammar.array_item_fields[field]}}) -%}
    {{ return(with_item) }}
{%- endmacro %}


{% macro segment_check_value(segment_name, op, value, what) -%}
    {%- if op in ['is_set', 'is_not_set'] -%}
        {%- if value is not none -%}
            {{ personalization.segment_error(segment_name, "operator '" ~ op ~ "' on " ~ what ~ " takes no value") }}
        {%- endif -%}
    {%- elif op in ['in', 'not_in'] -%}
        {%- if value is string or value is mapping or value is not iterable or value | length == 0 -%}
            {{ personalization.segment_error(segment_name, "operator '" ~ op ~ "' on " ~ what ~ " needs a non-empty list value") }}
        {%- endif -%}
    {%- elif op in ['within', 'not_within'] -%}
        {%- do personalization.segment_window_minutes(segment_name, value, op ~ " on " ~ what) -%}
    {%- elif op == 'between' -%}
        {%- if value is not mapping or value.keys() | list | sort != ['from', 'to'] -%}
            {{ personalization.segment_error(segment_name, "operator 'between' on " ~ what
                ~ " needs {from: D, to: D} (durations ago)") }}
        {%- endif -%}
        {%- do personalization.segment_check_window(segment_name, {'between': value}) -%}
    {%- elif value is none or value is mapping or (value is iterable and value is not string) -%}
        {{ personalization.segment_error(segment_name, "operator '" ~ op ~ "' on " ~ what ~ " needs a single value") }}
    {%- endif -%}
{%- endmacro %}


{#- An aggregate of a property over the matching events, compared with a number. -#}
{% macro segment_check_aggregate(segment_name, spec) -%}
    {%- set grammar = personalization.segment_grammar() -%}
    {%- set aggregate = spec.aggregate -%}
    {%- do personalization.segment_check_keys(segment_name, aggregate, grammar.aggregate_keys, 'an aggregate') -%}
    {%- for key in ['min_count', 'max_count', 'not_followed_by'] -%}
        {%- if key in spec -%}
            {{ personalization.segment_error(segment_name, "an aggregate condition takes no " ~ key) }}
        {%- endif -%}
    {%- endfor -%}
    {%- if aggregate.get('function') not in grammar.aggregate_functions -%}
        {{ personalization.segment_error(segment_name, "unknown aggregate function '" ~ aggregate.get('function')
            ~ "' (expected one of " ~ grammar.aggregate_functions | join(', ') ~ ")") }}
    {%- endif -%}
    {%- set plan = personalization.tracking_plan().events -%}
    {%- set properties = {} -%}
    {%- if spec.get('type', 'track') == 'track' -%}
        {%- set properties = (plan[spec.name] or {}).get('properties') or {} -%}
    {%- else -%}
        {%- for name in grammar.page_properties -%}
            {%- do properties.update({name: {'type': 'string'}}) -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if aggregate.get('property') not in properties -%}
        {{ personalization.segment_error(segment_name, "unknown property '" ~ aggregate.get('property')
            ~ "' for event '" ~ (spec.get('name') or spec.get('type')) ~ "' (not in the tracking plan)") }}
    {%- endif -%}
    {%- set property_type = properties[aggregate.property].get('type', 'string') -%}
    {%- if aggregate.function != 'count_distinct' and property_type not in ['number', 'integer'] -%}
        {{ personalization.segment_error(segment_name, aggregate.function ~ " needs a number property; '"
            ~ aggregate.property ~ "' is a " ~ property_type) }}
    {%- endif -%}
    {%- if property_type in ['array', 'object'] -%}
        {{ personalization.segment_error(segment_name, aggregate.function ~ " does not apply to the "
            ~ property_type ~ " property '" ~ aggregate.property ~ "'") }}
    {%- endif -%}
    {%- if aggregate.get('op') not in grammar.comparison_ops -%}
        {{ personalization.segment_error(segment_name, "unknown operator '" ~ aggregate.get('op')
            ~ "' on an aggregate (expected one of " ~ grammar.comparison_ops | join(', ') ~ ")") }}
    {%- endif -%}
    {%- if aggregate.get('value') is not number or aggregate.get('value') is boolean -%}
        {{ personalization.segment_error(segment_name, "an aggregate compares with a number, got '"
            ~ aggregate.get('value') ~ "'") }}
    {%- endif -%}
{%- endmacro %}


{% macro segment_check_count(segment_name, spec) -%}
    {%- for key in ['min_count', 'max_count'] -%}
        {%- set value = spec.get(key) -%}
        {%- if value is not none and (value is not number or value is boolean or value < 0 or value != value | int) -%}
            {{ personalization.segment_error(segment_name, key ~ " must be a whole number >= 0, got '" ~ value ~ "'") }}
        {%- endif -%}
    {%- endfor -%}
    {%- if spec.get('max_count') is not none and spec.get('min_count', 1) > spec.max_count -%}
        {{ personalization.segment_error(segment_name, "min_count " ~ spec.get('min_count', 1)
            ~ " is above max_count " ~ spec.max_count) }}
    {%- endif -%}
{%- endmacro %}


{#- Validate one rule node; returns the list of segments it references. -#}
{% macro segment_check_rule(segment_name, rule, references, profile_columns) -%}
    {%- set grammar = personalization.segment_grammar() -%}
    {%- if rule is not mapping or rule | length != 1 -%}
        {{ personalization.segment_error(segment_name, "a rule must be a mapping with exactly one of "
            ~ grammar.rule_keys | join(', ') ~ ", got '" ~ rule ~ "'") }}
    {%- endif -%}
    {%- set key = (rule.keys() | list)[0] -%}
    {%- set spec = rule[key] -%}
    {%- if key in ['all', 'any'] -%}
        {%- if spec is string or spec is mapping or spec is not iterable or spec | length == 0 -%}
            {{ personalization.segment_error(segment_name, "'" ~ key ~ "' needs a non-empty list of rules") }}
        {%- endif -%}
        {%- for child in spec -%}
            {%- do personalization.segment_check_rule(segment_name, child, references, profile_columns) -%}
        {%- endfor -%}
    {%- elif key == 'not' -%}
        {%- do personalization.segment_check_rule(segment_name, spec, references, profile_columns) -%}
    {%- elif key == 'event' -%}
        {%- do personalization.segment_check_keys(segment_name, spec, grammar.event_keys, 'an event condition') -%}
        {%- do personalization.segment_check_event_ref(segment_name, spec) -%}
        {%- do personalization.segment_check_count(segment_name, spec) -%}
        {%- do personalization.segment_check_window(segment_name, spec) -%}
        {%- if spec.get('aggregate') is not none -%}
            {%- do personalization.segment_check_aggregate(segment_name, spec) -%}
        {%- endif -%}
        {%- if spec.get('not_followed_by') is not none -%}
            {%- set follow = spec.not_followed_by -%}
            {%- do personalization.segment_check_keys(segment_name, follow, grammar.follow_keys, 'not_followed_by') -%}
            {%- do personalization.segment_check_event_ref(segment_name, follow) -%}
            {%- if follow.get('within') is none -%}
                {{ personalization.segment_error(segment_name, "malformed window: not_followed_by needs `within` (e.g. '1h')") }}
            {%- endif -%}
            {%- do personalization.segment_window_minutes(segment_name, follow.within, 'not_followed_by.within') -%}
        {%- endif -%}
    {%- elif key == 'funnel' -%}
        {%- do personalization.segment_check_keys(segment_name, spec, grammar.funnel_keys, 'a funnel') -%}
        {%- set steps = spec.get('steps') -%}
        {%- if steps is none or steps is string or steps is mapping or steps | length < 2 -%}
            {{ personalization.segment_error(segment_name, "a funnel needs a list of at least 2 steps") }}
        {%- endif -%}
        {%- for step in steps -%}
            {%- do personalization.segment_check_keys(segment_name, step, grammar.step_keys, 'a funnel step') -%}
            {%- do personalization.segment_check_event_ref(segment_name, step) -%}
        {%- endfor -%}
        {%- if spec.get('max_gap') is not none -%}
            {%- do personalization.segment_window_minutes(segment_name, spec.max_gap, 'max_gap') -%}
        {%- endif -%}
        {%- do personalization.segment_check_window(segment_name, spec) -%}
    {%- elif key == 'trait' -%}
        {%- do personalization.segment_check_keys(segment_name, spec, ['name', 'op', 'value'], 'a trait condition') -%}
        {%- if spec.get('name') not in profile_columns -%}
            {{ personalization.segment_error(segment_name, "unknown trait '" ~ spec.get('name')
                ~ "' (not a column of dim_user_profiles)" ~ personalization.segment_did_you_mean(spec.get('name'), profile_columns)) }}
        {%- endif -%}
        {%- if spec.get('op') not in grammar.trait_ops -%}
            {{ personalization.segment_error(segment_name, "unknown operator '" ~ spec.get('op') ~ "' on trait '"
                ~ spec.name ~ "' (expected one of " ~ grammar.trait_ops | join(', ') ~ ")" ~ personalization.segment_did_you_mean(spec.get('op'), grammar.trait_ops)) }}
        {%- endif -%}
        {%- do personalization.segment_check_value(segment_name, spec.op, spec.get('value'), "trait '" ~ spec.name ~ "'") -%}
    {%- elif key == 'segment' -%}
        {%- if spec is not string -%}
            {{ personalization.segment_error(segment_name, "'segment' takes the name of another segment") }}
        {%- endif -%}
        {%- do references.append(spec) -%}
    {%- elif key == 'cluster' -%}
        {%- do personalization.segment_check_keys(segment_name, spec, ['method', 'cluster_id', 'cluster_name'], 'a cluster condition') -%}
        {%- if spec.get('cluster_id') is none and spec.get('cluster_name') is none -%}
            {{ personalization.segment_error(segment_name, "a cluster condition needs cluster_id or cluster_name") }}
        {%- endif -%}
        {%- if spec.get('method', 'kmeans') not in ['kmeans', 'hierarchical'] -%}
            {{ personalization.segment_error(segment_name, "unknown cluster method '" ~ spec.method
                ~ "' (expected kmeans or hierarchical)") }}
        {%- endif -%}
        {%- if not personalization.segment_clusters_available() -%}
            {{ personalization.segment_error(segment_name, "cluster conditions need the var "
                ~ "segment_cluster_conditions: true (dbt_project.yml; it makes the segments wait on fct_user_clusters)") }}
        {%- endif -%}
    {%- else -%}
        {{ personalization.segment_error(segment_name, "unknown rule key '" ~ key ~ "'" ~ personalization.segment_did_you_mean(key, grammar.rule_keys)
            ~ " (expected one of " ~ grammar.rule_keys | join(', ') ~ ")") }}
    {%- endif -%}
{%- endmacro %}


{#- Columns of dim_user_profiles a trait condition may use: the documented columns of the model
    (models/marts/_marts__models.yml) and, once built, the columns of the table itself. -#}
{% macro segment_profile_columns() -%}
    {%- set columns = [] -%}
    {%- set node = graph.nodes.get('model.personalization.dim_user_profiles') -%}
    {%- if node is not none -%}
        {%- for name in node.columns -%}
            {%- do columns.append(name | lower) -%}
        {%- endfor -%}
        {%- set relation = adapter.get_relation(database=node.database, schema=node.schema, identifier=node.alias) -%}
        {%- if relation is not none -%}
            {%- for column in adapter.get_columns_in_relation(relation) -%}
                {%- do columns.append(column.name | lower) -%}
            {%- endfor -%}
        {%- endif -%}
    {%- endif -%}
    {#- catalogue traits and the tracking plan's declared traits (each with its _source and
        _observed_at) are columns of dim_user_profiles too, also before it is first built -#}
    {%- for trait in personalization.trait_catalogue() -%}
        {%- do columns.append(trait.name | lower) -%}
    {%- endfor -%}
    {%- for name in personalization.tracking_plan().traits -%}
        {%- for suffix in ['', '_source', '_observed_at'] -%}
            {%- do columns.append((name ~ suffix) | lower) -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(columns | unique | list) }}
{%- endmacro %}


{% macro segment_clusters_available() -%}
    {{ return(var('segment_cluster_conditions', false) and personalization.segment_graph_available()
        and graph.nodes.get('model.personalization.fct_user_clusters') is not none) }}
{%- endmacro %}


{#- Fails on the first problem: shape, names, duplicates, rules, references, cycles. -#}
{% macro validate_segments(definitions) -%}
    {%- set grammar = personalization.segment_grammar() -%}
    {%- if definitions is string or definitions is mapping or definitions is not iterable -%}
        {{ exceptions.raise_compiler_error(personalization.segment_source() ~ ": segment definitions must be a list of segments") }}
    {%- endif -%}
    {%- set profile_columns = personalization.segment_profile_columns() -%}
    {%- set names = [] -%}
    {%- set graph_edges = {} -%}
    {%- for segment in definitions -%}
        {%- set label = segment.get('name', '#' ~ loop.index) if segment is mapping else '#' ~ loop.index -%}
        {%- do personalization.segment_check_keys(label, segment, grammar.segment_keys, 'a segment') -%}
        {%- if segment.get('name') is not string or not modules.re.fullmatch('[a-z][a-z0-9_]*', segment.name) -%}
            {{ personalization.segment_error(label, "name must be snake_case (a-z, 0-9, _), starting with a letter") }}
        {%- endif -%}
        {%- if segment.name in names -%}
            {{ personalization.segment_error(segment.name, "duplicate segment name") }}
        {%- endif -%}
        {%- do names.append(segment.name) -%}
        {%- for key in ['description', 'owner', 'rule'] -%}
            {%- if not segment.get(key) -%}
                {{ personalization.segment_error(segment.name, "missing " ~ key) }}
            {%- endif -%}
        {%- endfor -%}
        {%- set min_size = segment.get('min_size') -%}
        {%- if min_size is not none and (min_size is not number or min_size is boolean or min_size < 0 or min_size != min_size | int) -%}
            {{ personalization.segment_error(segment.name, "min_size must be a whole number >= 0, got '" ~ min_size ~ "'") }}
        {%- endif -%}
        {%- if segment.get('requires_consent', 'personalization') not in grammar.consents -%}
            {{ personalization.segment_error(segment.name, "requires_consent must be one of " ~ grammar.consents | join(', ')) }}
        {%- endif -%}
        {%- set references = [] -%}
        {%- do personalization.segment_check_rule(segment.name, segment.rule, references, profile_columns) -%}
        {%- do graph_edges.update({segment.name: references}) -%}
    {%- endfor -%}
    {%- for name, references in graph_edges.items() -%}
        {%- for reference in references -%}
            {%- if reference not in names -%}
                {{ personalization.segment_error(name, "unknown segment '" ~ reference ~ "' referenced"
                    ~ personalization.segment_did_you_mean(reference, names)) }}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- for name in names -%}
        {%- do personalization.segment_check_cycle(name, graph_edges, [name]) -%}
    {%- endfor -%}
{%- endmacro %}


{% macro segment_check_cycle(name, graph_edges, path) -%}
    {%- for reference in graph_edges[name] -%}
        {%- if reference == path[0] -%}
            {{ personalization.segment_error(path[0], "cycle between segments: " ~ (path + [reference]) | join(' -> ')) }}
        {%- elif reference not in path -%}
            {#- a cycle not through path[0] is reported when its own members are checked -#}
            {%- do personalization.segment_check_cycle(reference, graph_edges, path + [reference]) -%}
        {%- endif -%}
    {%- endfor -%}
{%- endmacro %}
