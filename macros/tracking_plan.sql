{#- The tracking plan declared in models/staging/tracking_plan.yml (meta of stg_tracking_plan).
    Empty, and marked unavailable, while dbt parses and in unit tests (no graph there). -#}
{% macro tracking_plan() -%}
    {#- a var overrides the file (tests feed plans this way) -#}
    {%- set override = var('tracking_plan', none) -%}
    {%- if override is not none -%}
        {{ return(validate_tracking_plan(override)) }}
    {%- endif -%}
    {%- if not execute or 'nodes' not in graph -%}
        {#- parsing, or a dbt unit test (which has no graph): nothing to validate against -#}
        {{ return({'events': {}, 'trait_rules': {}, 'traits': {}, 'unavailable': true}) }}
    {%- endif -%}
    {%- set node = graph.nodes.get('model.personalization.stg_tracking_plan') -%}
    {%- if node is none or 'tracking_plan' not in node.config.meta -%}
        {{ exceptions.raise_compiler_error(
            "tracking plan not found: models/staging/tracking_plan.yml must define "
            ~ "config.meta.tracking_plan on the model stg_tracking_plan") }}
    {%- endif -%}
    {{ return(validate_tracking_plan(node.config.meta.tracking_plan)) }}
{%- endmacro %}


{#- Every value of the plan reaches SQL as a quoted literal (sql_literal); numbers are checked
    to be numbers here, so nothing else from the plan is ever pasted into SQL. -#}
{% macro validate_tracking_plan(plan) -%}
    {%- set plan = plan or {} -%}
    {%- for event_name, spec in (plan.get('events') or {}).items() -%}
        {%- for name, rule in ((spec or {}).get('properties') or {}).items() -%}
            {%- do plan_type_kinds(rule.get('type')) -%}
            {%- if rule.get('min') is not none and rule.min is not number -%}
                {{ exceptions.raise_compiler_error("tracking plan: event '" ~ event_name ~ "' property '"
                    ~ name ~ "': min must be a number, got '" ~ rule.min ~ "'") }}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- for name, rule in (plan.get('trait_rules') or {}).items() -%}
        {%- for key in ['min', 'max', 'min_age', 'max_age'] -%}
            {%- if (rule or {}).get(key) is not none and rule[key] is not number -%}
                {{ exceptions.raise_compiler_error("tracking plan: trait rule '" ~ name ~ "': "
                    ~ key ~ " must be a number, got '" ~ rule[key] ~ "'") }}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- for name, rule in (plan.get('traits') or {}).items() -%}
        {%- do declared_trait_type(name, rule) -%}
    {%- endfor -%}
    {{ return({'events': plan.get('events') or {}, 'trait_rules': plan.get('trait_rules') or {},
               'traits': plan.get('traits') or {}}) }}
{%- endmacro %}


{#- A value from configuration as a SQL string literal: quotes doubled, nothing else can escape. -#}
{% macro quoted_literal(value) -%}
    {{ return(adapter.dispatch('quoted_literal', 'personalization')(value)) }}
{%- endmacro %}

{% macro default__quoted_literal(value) -%}
    {{ return("'" ~ (value | string | replace("'", "''")) ~ "'") }}
{%- endmacro %}


{#- A list of values as a parenthesised list of literals, for `in (...)`. An empty list is an
    empty subquery: `in` it is false and `not in` it is true (never null). -#}
{% macro quoted_literal_list(values) -%}
    {%- set literals = [] -%}
    {%- for value in values -%}{%- do literals.append(quoted_literal(value)) -%}{%- endfor -%}
    {{ return('(' ~ (literals | join(', ') if literals else 'select null where false') ~ ')') }}
{%- endmacro %}


{#- A list of values as an array literal of strings. -#}
{% macro quoted_literal_array(values) -%}
    {%- set literals = [] -%}
    {%- for value in values -%}{%- do literals.append(quoted_literal(value)) -%}{%- endfor -%}
    {{ return('[' ~ literals | join(', ') ~ ']') }}
{%- endmacro %}


{#- JSON kinds (see json_kind) that satisfy a tracking-plan type. -#}
{% macro plan_type_kinds(plan_type) -%}
    {%- set kinds = {
        'string': ['string'],
        'number': ['number', 'integer'],
        'integer': ['integer'],
        'boolean': ['boolean'],
        'array': ['array'],
        'object': ['object'],
    } -%}
    {%- if plan_type not in kinds -%}
        {{ exceptions.raise_compiler_error(
            "tracking plan: unknown property type '" ~ plan_type ~ "'; expected one of "
            ~ kinds.keys() | join(', ')) }}
    {%- endif -%}
    {{ return(kinds[plan_type]) }}
{%- endmacro %}


{#- Every property name the plan declares, sorted: each is typed once per event (json_type_many)
    and named kind_<name>; the ones with a min are read as prop_<name> too. -#}
{% macro plan_property_names() -%}
    {%- set names = [] -%}
    {%- for spec in tracking_plan().events.values() -%}
        {%- for name in ((spec or {}).get('properties') or {}).keys() -%}
            {%- if name not in names -%}{%- do names.append(name) -%}{%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(names | sort) }}
{%- endmacro %}


{#- The property names that have a `min` rule in some event, sorted: the only properties whose
    value (prop_<name>) staging reads; every declared one is typed (kind_<name>). -#}
{% macro plan_min_property_names() -%}
    {%- set names = [] -%}
    {%- for spec in tracking_plan().events.values() -%}
        {%- for name, rule in ((spec or {}).get('properties') or {}).items() -%}
            {%- if (rule or {}).get('min') is not none and name not in names -%}{%- do names.append(name) -%}{%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(names | sort) }}
{%- endmacro %}


{#- The JSONPaths of plan_property_names(), in the same order. -#}
{% macro plan_property_paths() -%}
    {%- set paths = [] -%}
    {%- for name in plan_property_names() -%}{%- do paths.append(json_key_path(name)) -%}{%- endfor -%}
    {{ return(paths) }}
{%- endmacro %}


{#- A property the plan types as string whose name says it is an identifier (id, *_id) also
    accepts a JSON integer: real sources send order_id: 536365. Read as text it is '536365'. -#}
{% macro is_id_like_property(name, rule) -%}
    {{ return(rule.get('type') == 'string' and (name == 'id' or name.endswith('_id') or name.endswith('Id'))) }}
{%- endmacro %}


{#- A boolean SQL expression: true when the event named in `event_column` breaks `check` for any
    property of its tracking-plan entry. Reads the columns kind_<name> (json_type_many: the
    engine's names, so the plan's kinds are compared as json_native_kinds) and
    prop_<name> (text) of each property with a min (see plan_property_names,
    plan_min_property_names). check is one of:
    missing   - a required property is absent, or none of a `required_one_of` group is present
    mistyped  - a present property has a JSON type the plan does not allow (as in JSON Schema,
                null is a type: allowed for optional properties, wrong for required ones)
    negative  - a numeric property with `min` >= 0 holds a negative value
    below_min - a numeric property is at least 0 but below its `min` -#}
{% macro tracking_plan_violation(check, event_column) -%}
    {%- set clauses = [] -%}
    {%- set native_null = quoted_literal(json_native_kinds(['null'])[0]) -%}
    {%- for event_name, spec in tracking_plan().events.items() -%}
        {%- set conditions = [] -%}
        {%- for name, rule in ((spec or {}).get('properties') or {}).items() -%}
            {%- set kind = field_column('kind_', name) -%}
            {%- set number = try_cast(field_column('prop_', name), 'double') -%}
            {%- if check == 'missing' and rule.get('required') -%}
                {%- do conditions.append(kind ~ " is null") -%}
            {%- elif check == 'mistyped' -%}
                {%- set allowed = plan_type_kinds(rule.type) + ([] if rule.get('required') else ['null'])
                    + (['integer'] if is_id_like_property(name, rule) else []) -%}
                {%- do conditions.append(kind ~ " not in " ~ quoted_literal_list(json_native_kinds(allowed))) -%}
            {%- elif check == 'negative' and rule.get('min') is not none and rule.min >= 0 -%}
                {%- do conditions.append(number ~ " < 0") -%}
            {%- elif check == 'below_min' and rule.get('min') is not none and rule.min > 0 -%}
                {%- do conditions.append(number ~ " >= 0 and " ~ number ~ " < " ~ rule.min) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if check == 'missing' -%}
            {%- for group in (spec or {}).get('required_one_of') or [] -%}
                {%- set absent = [] -%}
                {%- for name in group -%}
                    {%- do absent.append("coalesce(" ~ field_column('kind_', name) ~ ", " ~ native_null ~ ") = " ~ native_null) -%}
                {%- endfor -%}
                {%- do conditions.append(absent | join(' and ')) -%}
            {%- endfor -%}
        {%- endif -%}
        {%- if conditions -%}
            {%- do clauses.append("when " ~ quoted_literal(event_name)
                ~ " then coalesce((" ~ conditions | join(") or (") ~ "), false)") -%}
        {%- endif -%}
    {%- endfor -%}
    {#- a case on the event name: each line's own conditions only (an `or` of every event's
        conditions computed all of them for every line) -#}
    {%- if clauses -%}
        case {{ event_column }}
        {{ clauses | join('\n        ') }}
        else false end
    {%- else -%}
        false
    {%- endif -%}
{%- endmacro %}


{#- Declared traits (the `traits:` section of the plan): their SQL type. Types: string, integer,
    number, boolean, date. Keys: accepted (strings), min / max (numbers), pii (true: stored only
    as a keyed hash). -#}
{% macro declared_trait_type(name, rule) -%}
    {%- set types = {'string': 'varchar', 'integer': 'bigint', 'number': 'double',
                     'boolean': 'boolean', 'date': 'date'} -%}
    {%- set rule = rule or {} -%}
    {%- if not modules.re.match('^[a-z][a-z0-9_]*$', name | string) -%}
        {{ exceptions.raise_compiler_error("tracking plan: trait '" ~ name ~ "': name must be snake_case (it becomes a profile column)") }}
    {%- endif -%}
    {%- if rule.get('type') not in types -%}
        {{ exceptions.raise_compiler_error("tracking plan: trait '" ~ name ~ "': unknown type '"
            ~ rule.get('type') ~ "'; expected one of " ~ types.keys() | join(', ')) }}
    {%- endif -%}
    {%- for key in ['min', 'max'] -%}
        {%- if rule.get(key) is not none and rule[key] is not number -%}
            {{ exceptions.raise_compiler_error("tracking plan: trait '" ~ name ~ "': " ~ key ~ " must be a number") }}
        {%- endif -%}
    {%- endfor -%}
    {{ return('varchar' if rule.get('pii') else types[rule.type]) }}
{%- endmacro %}


{#- The names of the standard traits staging reads into their own columns; every other key of
    a trait object is a custom trait (declared in the plan, or kept as undeclared). -#}
{% macro standard_trait_keys() -%}
    {{ return(['age', 'birthday', 'country', 'city', 'state', 'postalCode', 'postal_code', 'address',
               'gender', 'email', 'firstName', 'lastName', 'first_name', 'last_name', 'name']) }}
{%- endmacro %}


{#- The typed value of declared trait `name` read from a JSON object of traits; null when absent
    or when it breaks the trait's rule (type, accepted values, range). -#}
{% macro declared_trait_value(json, name, rule) -%}
    {%- set text = json_text(json, json_key_path(name)) -%}
    {%- set sql_type = declared_trait_type(name, rule) -%}
    {%- set checks = [] -%}
    {%- if rule.get('accepted') -%}
        {%- do checks.append(text ~ " in " ~ quoted_literal_list(rule.accepted)) -%}
    {%- endif -%}
    {%- set typed = text if sql_type == 'varchar' else try_cast(text, sql_type) -%}
    {%- if rule.get('min') is not none -%}{%- do checks.append(typed ~ " >= " ~ rule.min) -%}{%- endif -%}
    {%- if rule.get('max') is not none -%}{%- do checks.append(typed ~ " <= " ~ rule.max) -%}{%- endif -%}
    {%- if checks -%}
        case when {{ checks | join(' and ') }} then {{ typed }} end
    {%- else -%}
        {{ typed }}
    {%- endif -%}
{%- endmacro %}


{#- The custom traits kept on a staged event: every undeclared key as sent; every declared trait
    typed and valid (an invalid one is removed), a pii one as its keyed hash. Null when empty.
    Reads the columns custom_value_<name> of the staging model. -#}
{% macro custom_traits_cleaned(json, declared_traits) -%}
    {%- set pairs = [] -%}
    {%- for name, rule in declared_traits.items() -%}
        {%- set value = field_column('custom_value_', name) -%}
        {%- do pairs.append(quoted_literal(name) ~ ', to_json('
            ~ (pseudonymise(value) if rule.get('pii') else value) ~ ')') -%}
    {%- endfor -%}
    {%- set patched = "json_merge_patch(" ~ json ~ ", json_object(" ~ pairs | join(', ') ~ "))" if pairs else json -%}
    {%- if pairs and target.type == 'spark' -%}
        {{ exceptions.raise_compiler_error("tracking plan: declared custom traits (`traits:`) are not "
            ~ "ported to Spark yet (docs/scale-out.md); the spark target builds plans without them") }}
    {%- endif -%}
    case when {{ array_size(json_object_keys(patched)) }} > 0 then {{ patched }} end
{%- endmacro %}


{#- One 'invalid_trait' reason expression per declared trait (for non_null_array). -#}
{% macro declared_trait_issue_expressions(declared_traits) -%}
    {%- set expressions = [] -%}
    {%- for name in declared_traits.keys() -%}
        {%- do expressions.append("case when " ~ field_column('custom_text_', name) ~ " is not null and "
            ~ field_column('custom_value_', name) ~ " is null then 'invalid_trait' end") -%}
    {%- endfor -%}
    {{ return(expressions) }}
{%- endmacro %}


{#- The declared traits an event sent with a value that broke their rule, as a list of
    {trait_name, rejected_value}. -#}
{% macro declared_trait_rejections(declared_traits) -%}
    {{ return(adapter.dispatch('declared_trait_rejections', 'personalization')(declared_traits)) }}
{%- endmacro %}

{#- Spark: the same array of structs (named_struct, filter); none declared: an empty typed array. -#}
{% macro spark__declared_trait_rejections(declared_traits) -%}
    {%- if not declared_traits -%}
        cast(array() as array<struct<trait_name: string, rejected_value: string>>)
    {%- else -%}
        filter(array(
            {%- for name in declared_traits.keys() %}
            named_struct('trait_name', {{ quoted_literal(name) }}, 'rejected_value', case
                when {{ field_column('custom_value_', name) }} is null
                    then {{ field_column('custom_text_', name) }}
            end){{ ',' if not loop.last }}
            {%- endfor %}
        ), rejection -> rejection.rejected_value is not null)
    {%- endif -%}
{%- endmacro %}

{% macro default__declared_trait_rejections(declared_traits) -%}
    {%- if not declared_traits -%}
        cast([] as struct(trait_name varchar, rejected_value varchar)[])
    {%- else -%}
        list_filter([
            {%- for name in declared_traits.keys() %}
            {'trait_name': {{ quoted_literal(name) }}, 'rejected_value': case
                when {{ field_column('custom_value_', name) }} is null
                    then {{ field_column('custom_text_', name) }}
            end}{{ ',' if not loop.last }}
            {%- endfor %}
        ], rejection -> rejection.rejected_value is not null)
    {%- endif -%}
{%- endmacro %}


{#- `, <text> as custom_text_<name>, <typed value> as custom_value_<name>` for every declared
    trait, read from a JSON object of custom traits (a value that breaks its rule is null). -#}
{% macro declared_trait_columns(json, declared_traits) -%}
    {%- for name, rule in declared_traits.items() %},
        {{ json_text(json, json_key_path(name)) }} as {{ field_column('custom_text_', name) }},
        {{ declared_trait_value(json, name, rule) }} as {{ field_column('custom_value_', name) }}
    {%- endfor %}
{%- endmacro %}
