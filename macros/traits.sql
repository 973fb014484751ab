{#- The computed-trait catalogue (models/intermediate/profiles/trait_catalogue.yml, meta of
    int_user_catalogue_traits): validation and compilation into aggregate SQL. -#}

{% macro trait_catalogue() -%}
    {%- if not execute -%}
        {{ return([]) }}
    {%- endif -%}
    {#- validated once per invocation (invocation_cache) -#}
    {%- set cache = personalization.invocation_cache() -%}
    {%- if 'trait_catalogue' in cache -%}
        {{ return(cache['trait_catalogue']) }}
    {%- endif -%}
    {#- a var overrides the file (tests feed catalogues this way) -#}
    {%- set traits = var('trait_catalogue', none) -%}
    {%- if traits is none and 'nodes' in graph -%}
        {%- set node = graph.nodes.get('model.personalization.int_user_catalogue_traits') -%}
        {%- set traits = node.config.meta.get('traits', []) if node is not none else [] -%}
    {%- endif -%}
    {%- set traits = traits or [] -%}
    {%- do validate_trait_catalogue(traits) -%}
    {%- do cache.update({'trait_catalogue': traits}) -%}
    {{ return(traits) }}
{%- endmacro %}



{% macro trait_types() -%}
    {{ return(['counter', 'sum', 'avg', 'min', 'max', 'first', 'last', 'most_frequent',
               'unique_list', 'unique_count', 'first_at', 'last_at', 'derived']) }}
{%- endmacro %}

{#- The tracking plan's declared numeric traits (integer or number, never pii): a derived trait's
    expression may name them (e.g. revenue_30d / household_size); they are read from
    int_user_attributes. -#}
{% macro declared_numeric_traits() -%}
    {%- set names = [] -%}
    {%- for name, rule in tracking_plan().traits.items() | sort -%}
        {%- if rule.get('type') in ['integer', 'number'] and not rule.get('pii') -%}
            {%- do names.append(name) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(names) }}
{%- endmacro %}


{#- Types whose value is a number (usable in a derived trait's expression). -#}
{% macro trait_numeric_types() -%}
    {{ return(['counter', 'sum', 'avg', 'min', 'max', 'unique_count', 'derived']) }}
{%- endmacro %}


{#- The tokens of a derived trait's expression: names, numbers, + - * / ( ) (anything else is
    returned as its own token, for the error). -#}
{% macro derived_tokens(expression) -%}
    {{ return(modules.re.findall('[A-Za-z_][A-Za-z0-9_]*|[0-9]+(?:[.][0-9]+)?|[-+*/()]|[^ ]', expression | string)) }}
{%- endmacro %}


{#- The first problem of a derived expression over the numeric traits in `known`, or none.
    Grammar: operand (op operand)*, operand = name | number | -operand | ( expression ). -#}
{% macro derived_problem(expression, known) -%}
    {%- set ns = namespace(expect_operand=true, depth=0, previous=none, problem=none) -%}
    {%- for token in personalization.derived_tokens(expression) if ns.problem is none -%}
        {%- set is_operand = modules.re.fullmatch('[A-Za-z_][A-Za-z0-9_]*|[0-9]+(?:[.][0-9]+)?', token) is not none -%}
        {%- if is_operand and ns.expect_operand -%}
            {%- if not token[0].isdigit() and token not in known -%}
                {%- set ns.problem = "unknown trait '" ~ token ~ "' in expression (a numeric trait defined above: "
                    ~ known | join(', ') ~ ")" -%}
            {%- endif -%}
            {%- set ns.expect_operand = false -%}
        {%- elif token == '(' and ns.expect_operand -%}
            {%- set ns.depth = ns.depth + 1 -%}
        {%- elif token == '-' and ns.expect_operand and ns.previous != '/' -%}
            {#- unary minus -#}
        {%- elif token == ')' and not ns.expect_operand and ns.depth > 0 -%}
            {%- set ns.depth = ns.depth - 1 -%}
        {%- elif token in ['+', '-', '*', '/'] and not ns.expect_operand -%}
            {%- set ns.expect_operand = true -%}
        {%- else -%}
            {%- set ns.problem = "malformed expression '" ~ expression ~ "' at '" ~ token ~ "' (names of numeric traits, "
                ~ "numbers, + - * / and parentheses; a negative divisor needs parentheses)" -%}
        {%- endif -%}
        {%- set ns.previous = token -%}
    {%- endfor -%}
    {%- if ns.problem is none and (ns.expect_operand or ns.depth != 0) -%}
        {%- set ns.problem = "malformed expression '" ~ expression ~ "' (incomplete or unbalanced parentheses)" -%}
    {%- endif -%}
    {{ return(ns.problem) }}
{%- endmacro %}


{#- SQL of a validated derived expression; `columns` maps a trait name to its SQL. Every divisor
    is wrapped in nullif(..., 0): division by zero gives no value (DuckDB would give infinity). -#}
{% macro derived_sql(expression, columns) -%}
    {%- set ns = namespace(divisor=false, depth=0) -%}
    {%- set out = [] -%}
    {%- set closes = [] -%}
    {%- for token in personalization.derived_tokens(expression) -%}
        {%- if token == '(' -%}
            {%- if ns.divisor -%}
                {%- do out.append('nullif(') -%}
                {%- do closes.append(ns.depth) -%}
                {%- set ns.divisor = false -%}
            {%- endif -%}
            {%- do out.append('(') -%}
            {%- set ns.depth = ns.depth + 1 -%}
        {%- elif token == ')' -%}
            {%- set ns.depth = ns.depth - 1 -%}
            {%- do out.append(')') -%}
            {%- if closes and closes[-1] == ns.depth -%}
                {%- do out.append(', 0)') -%}
                {%- do closes.pop() -%}
            {%- endif -%}
        {%- elif token in ['+', '-', '*', '/'] -%}
            {%- do out.append(' ' ~ token ~ ' ') -%}
            {%- set ns.divisor = token == '/' -%}
        {%- else -%}
            {%- set operand = columns[token] if token in columns else token -%}
            {%- do out.append('nullif(' ~ operand ~ ', 0)' if ns.divisor else operand) -%}
            {%- set ns.divisor = false -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return('(' ~ out | join('') ~ ')') }}
{%- endmacro %}

{#- The operators of a catalogue `where` filter: the segments' comparisons and lists (one list,
    segment_grammar; TRAIT_FILTER_OPS in Python). -#}
{% macro trait_filter_ops() -%}
    {{ return(personalization.segment_grammar().comparison_ops + ['in', 'not_in']) }}
{%- endmacro %}


{#- A window such as '24h', '7d' or 'all' as hours (none for all time), parsed by the segments'
    duration parser (duration_minutes) in hours and days; errors name the trait. -#}
{% macro window_hours(window, owner) -%}
    {%- if window is none or window == 'all' -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set minutes = personalization.duration_minutes(window, 'hd') -%}
    {%- if minutes is none -%}
        {{ exceptions.raise_compiler_error(owner ~ ": bad window '" ~ window
            ~ "'; use a positive whole number of hours or days such as '24h' or '7d', or 'all'") }}
    {%- endif -%}
    {{ return(minutes // 60) }}
{%- endmacro %}


{% macro validate_trait_catalogue(traits) -%}
    {%- set plan = tracking_plan().events -%}
    {%- set seen = [] -%}
    {%- for trait in traits -%}
        {%- set owner = "trait '" ~ trait.get('name', '?') ~ "'" -%}
        {%- if not trait.get('name') or not modules.re.match('^[a-z][a-z0-9_]*$', trait.name) -%}
            {{ exceptions.raise_compiler_error(owner ~ ": name must be snake_case") }}
        {%- endif -%}
        {%- if trait.name in seen -%}
            {{ exceptions.raise_compiler_error(owner ~ ": defined twice") }}
        {%- endif -%}
        {%- do seen.append(trait.name) -%}
        {%- if trait.get('type') not in trait_types() -%}
            {{ exceptions.raise_compiler_error(owner ~ ": unknown type '" ~ trait.get('type')
                ~ "'; expected one of " ~ trait_types() | join(', ')) }}
        {%- endif -%}
        {%- if trait.type == 'derived' -%}
            {%- set known = declared_numeric_traits() -%}
            {%- for earlier in traits[:loop.index0] if earlier.get('type') in trait_numeric_types() -%}
                {%- do known.append(earlier.name) -%}
            {%- endfor -%}
            {%- if trait.get('expression') is not string -%}
                {{ exceptions.raise_compiler_error(owner ~ ": type derived needs an expression, e.g. 'revenue_30d - refunds_30d'") }}
            {%- endif -%}
            {%- set problem = derived_problem(trait.expression, known) -%}
            {%- if problem is not none -%}
                {{ exceptions.raise_compiler_error(owner ~ ": " ~ problem) }}
            {%- endif -%}
        {%- else -%}
        {%- set event = trait.get('event') -%}
        {%- set checkable = not tracking_plan().get('unavailable') -%}
        {%- if checkable and event not in plan and event != 'page' -%}
            {{ exceptions.raise_compiler_error(owner ~ ": unknown event '" ~ event
                ~ "' (not in the tracking plan)") }}
        {%- endif -%}
        {%- set known = ['path', 'url', 'title', 'referrer'] if event == 'page'
            else ((plan.get(event) or {}).get('properties') or {}).keys() | list
                + ([catalogue_amount_property()] if event in catalogue_amount_events() else []) -%}
        {%- set needs_property = trait.type not in ['counter', 'first_at', 'last_at'] -%}
        {%- if needs_property and not trait.get('property') -%}
            {{ exceptions.raise_compiler_error(owner ~ ": type " ~ trait.type ~ " needs a property") }}
        {%- endif -%}
        {%- if checkable and trait.get('property') and trait.property not in known -%}
            {{ exceptions.raise_compiler_error(owner ~ ": unknown property '" ~ trait.property
                ~ "' for event '" ~ event ~ "'") }}
        {%- endif -%}
        {%- for condition in trait.get('where', []) -%}
            {%- if checkable and condition.get('property') not in known -%}
                {{ exceptions.raise_compiler_error(owner ~ ": unknown property '"
                    ~ condition.get('property') ~ "' in where for event '" ~ event ~ "'") }}
            {%- endif -%}
            {%- if condition.get('op', '=') not in trait_filter_ops() -%}
                {{ exceptions.raise_compiler_error(owner ~ ": unknown operator '" ~ condition.op
                    ~ "'; expected one of " ~ trait_filter_ops() | join(', ')) }}
            {%- endif -%}
        {%- endfor -%}
        {%- do window_hours(trait.get('window'), owner) -%}
        {%- endif -%}
    {%- endfor -%}
{%- endmacro %}


{#- The computed property every order event carries for the catalogue: the amount in
    var('reporting_currency') from int_order_amounts (revenue, else total, converted; a refund or
    cancellation without an amount reverses the whole order), the same money as the profile's. -#}
{% macro catalogue_amount_property() -%}
    {{ return('reporting_amount') }}
{%- endmacro %}

{% macro catalogue_amount_events() -%}
    {{ return(['Order Completed', 'Order Refunded', 'Order Cancelled']) }}
{%- endmacro %}


{#- Every event property the catalogue reads from the events' JSON (values and filters), sorted;
    each becomes the column prop_<name> of int_user_catalogue_traits' events. -#}
{% macro trait_property_names() -%}
    {%- set names = [] -%}
    {%- for trait in trait_catalogue() -%}
        {%- for name in [trait.get('property')] + (trait.get('where', []) | map(attribute='property') | list) -%}
            {%- if name and name not in names and name != catalogue_amount_property() -%}
                {%- do names.append(name) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(names | sort) }}
{%- endmacro %}


{#- The column holding an event property's text (or the computed reporting_amount). -#}
{% macro trait_property(name) -%}
    {{ return(field_column('prop_', name)) }}
{%- endmacro %}


{#- One property condition, e.g. {property: price, op: '>=', value: 100}: the property as a
    number when every value is one, else as text, compared by the segments' comparison
    (segment_comparison_sql: the same operators, quoting and null handling). -#}
{% macro property_condition(condition) -%}
    {%- set op = condition.get('op', '=') -%}
    {%- set values = condition.value if condition.value is iterable and condition.value is not string
        else [condition.value] -%}
    {%- set numeric = values | select('number') | list | length == values | length -%}
    {%- set text = trait_property(condition.property) -%}
    {%- set operand = try_cast(text, 'double') if numeric else text -%}
    {{ return(personalization.segment_comparison_sql(operand, op, values if op in ['in', 'not_in'] else values[0])) }}
{%- endmacro %}


{#- The boolean SQL condition selecting a trait's events: event name, filters and window. -#}
{% macro trait_event_condition(trait) -%}
    {%- set parts = [] -%}
    {%- if trait.event == 'page' -%}
        {%- do parts.append("event_type = 'page'") -%}
    {%- else -%}
        {%- do parts.append("event_name = " ~ personalization.segment_literal(trait.event)) -%}
    {%- endif -%}
    {%- for condition in trait.get('where', []) -%}
        {%- do parts.append(property_condition(condition)) -%}
    {%- endfor -%}
    {%- set hours = window_hours(trait.get('window'), "trait '" ~ trait.name ~ "'") -%}
    {%- if hours is not none -%}
        {%- do parts.append("event_at > " ~ dbt.dateadd('hour', -1 * hours, as_of())) -%}
    {%- endif -%}
    {{ return('(' ~ parts | join(' and ') ~ ')') }}
{%- endmacro %}


{#- The events any catalogue trait can read, as one condition on the event's kind (its name, or
    type page): every trait's aggregate reads only the events of its trait_event_condition, so
    the model need not read (nor parse the properties of) any other event. `false` when no trait
    reads events (only derived ones). Example: `where {{ catalogue_events_condition() }}` ->
    `where (event_name in ('Order Completed', 'Product Viewed'))`. -#}
{% macro catalogue_events_condition() -%}
    {%- set events = [] -%}
    {%- for trait in trait_catalogue() if trait.type != 'derived' and trait.event is not none -%}
        {%- if trait.event not in events -%}{%- do events.append(trait.event) -%}{%- endif -%}
    {%- endfor -%}
    {%- set parts = [] -%}
    {%- if 'page' in events -%}
        {%- do parts.append(trait_event_condition({'event': 'page'})) -%}
    {%- endif -%}
    {%- set names = events | reject('equalto', 'page') | sort -%}
    {%- if names -%}
        {%- do parts.append('event_name in ' ~ quoted_literal_list(names)) -%}
    {%- endif -%}
    {{ return('(' ~ parts | join(' or ') ~ ')' if parts else 'false') }}
{%- endmacro %}


{#- The ordering of first / last traits: event_at, and of events at the same instant the
    message_id (unique per event), so the pick is total and the same on every engine: first takes
    the smallest message_id of the earliest instant, last the greatest of the latest. -#}
{% macro tie_broken_time() -%}
    {{ return(ordering_key(['event_at', 'message_id'])) }}
{%- endmacro %}


{#- `function(expression)` over DOUBLE values, the same whatever order the rows arrive in: a
    floating-point sum depends on the order (10.1 + 20.2 + 39.4 + 30.3 = 99.99999999999999, in
    another order 100.0), so sum and avg are rounded to 6 decimals, below any property's own
    precision; min and max need nothing. Catalogue traits and segment aggregates use it, so a
    threshold such as `sum(price) >= 100` decides the same on every run and engine.
    Example: `order_free_aggregate('sum', 'price')` -> `round(sum(price), 6)`. -#}
{% macro order_free_aggregate(function, expression) -%}
    {%- set aggregate = function ~ '(' ~ expression ~ ')' -%}
    {{ return('round(' ~ aggregate ~ ', 6)' if function in ['sum', 'avg'] else aggregate) }}
{%- endmacro %}


{#- The aggregate expression of a trait over one user's events (most_frequent is done apart). -#}
{% macro trait_aggregate(trait) -%}
    {%- set condition = trait_event_condition(trait) -%}
    {%- set value = trait_property(trait.property) if trait.get('property') else none -%}
    {%- set number = try_cast(value, 'double') if value is not none else none -%}
    {%- if trait.type == 'counter' -%}
        {{ return('count(case when ' ~ condition ~ ' then 1 end)') }}
    {%- elif trait.type in ['sum', 'avg', 'min', 'max'] -%}
        {%- set aggregate = order_free_aggregate(trait.type, 'case when ' ~ condition ~ ' then ' ~ number ~ ' end') -%}
        {{ return('coalesce(' ~ aggregate ~ ', 0)' if trait.type == 'sum' else aggregate) }}
    {%- elif trait.type == 'first_at' -%}
        {{ return('min(case when ' ~ condition ~ ' then event_at end)') }}
    {%- elif trait.type == 'last_at' -%}
        {{ return('max(case when ' ~ condition ~ ' then event_at end)') }}
    {%- elif trait.type == 'first' -%}
        {{ return('min_by(' ~ value ~ ', case when ' ~ condition ~ ' and ' ~ value ~ ' is not null then ' ~ tie_broken_time() ~ ' end)') }}
    {%- elif trait.type == 'last' -%}
        {{ return('max_by(' ~ value ~ ', case when ' ~ condition ~ ' and ' ~ value ~ ' is not null then ' ~ tie_broken_time() ~ ' end)') }}
    {%- elif trait.type == 'unique_count' -%}
        {{ return('count(distinct case when ' ~ condition ~ ' then ' ~ value ~ ' end)') }}
    {%- elif trait.type == 'unique_list' -%}
        {{ return(sorted_unique_list(value, condition)) }}
    {%- endif -%}
{%- endmacro %}


{#- Sorted distinct non-null values of expr over the rows where condition holds. -#}
{% macro sorted_unique_list(expr, condition) -%}
    {{ return(adapter.dispatch('sorted_unique_list', 'personalization')(expr, condition)) }}
{%- endmacro %}

{% macro duckdb__sorted_unique_list(expr, condition) -%}
    {{ return('list_sort(list(distinct ' ~ expr ~ ') filter (where ' ~ condition ~ ' and ' ~ expr ~ ' is not null))') }}
{%- endmacro %}

{#- Spark's collect_set gives an empty array where DuckDB's filtered list() gives null (no
    row): null it, so both engines say null for a user with no value. -#}
{% macro spark__sorted_unique_list(expr, condition) -%}
    {%- set values = 'array_sort(collect_set(case when ' ~ condition ~ ' then ' ~ expr ~ ' end))' -%}
    {{ return('case when size(' ~ values ~ ') > 0 then ' ~ values ~ ' end') }}
{%- endmacro %}


{#- The catalogue trait columns of `alias`, comma-separated (for selecting them downstream). -#}
{% macro catalogue_trait_columns(alias) -%}
    {%- set columns = [] -%}
    {%- for trait in trait_catalogue() -%}
        {%- do columns.append(alias ~ '.' ~ trait.name) -%}
    {%- endfor -%}
    {{ return(columns | join(',\n        ')) }}
{%- endmacro %}


{#- `, <aggregate> as <name>` for every trait that is a plain aggregate (not most_frequent, not
    derived). -#}
{% macro catalogue_aggregate_columns(traits) -%}
    {%- for trait in traits if trait.type not in ['most_frequent', 'derived'] -%}
        , {{ trait_aggregate(trait) }} as {{ trait.name }}
    {% endfor -%}
{%- endmacro %}


{#- The final trait columns: most_frequent from its ranked CTE, counts defaulting to 0. -#}
{#- Derived traits are arithmetic over the final columns of the traits they name (inlined, so a
    derived trait may use another). -#}
{% macro catalogue_final_columns(traits) -%}
    {%- set columns = {} -%}
    {%- for name in declared_numeric_traits() -%}
        {%- do columns.update({name: 'attributes.' ~ name}) -%}
    {%- endfor -%}
    {%- for trait in traits -%}
        {%- if trait.type == 'most_frequent' -%}
            {%- set column = trait.name ~ '_ranked.trait_value' -%}
        {%- elif trait.type in ['counter', 'unique_count', 'sum'] -%}
            {%- set column = 'coalesce(aggregated.' ~ trait.name ~ ', 0)' -%}
        {%- elif trait.type == 'derived' -%}
            {%- set column = derived_sql(trait.expression, columns) -%}
        {%- else -%}
            {%- set column = 'aggregated.' ~ trait.name -%}
        {%- endif -%}
        {%- do columns.update({trait.name: column}) %}
        , {{ column }} as {{ trait.name }}
    {%- endfor -%}
{%- endmacro %}
