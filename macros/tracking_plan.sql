{#- The tracking plan declared in models/staging/tracking_plan.yml (meta of stg_tracking_plan).
    Empty, and marked unavailable, while dbt parses and in unit tests (no graph there). -#}
{% macro tracking_plan() -%}
    {%- if not execute or 'nodes' not in graph -%}
        {#- parsing, or a dbt unit test (which has no graph): nothing to validate against -#}
        {{ return({'events': {}, 'trait_rules': {}, 'unavailable': true}) }}
    {%- endif -%}
    {%- set node = graph.nodes.get('model.personalization.stg_tracking_plan') -%}
    {%- if node is none or 'tracking_plan' not in node.config.meta -%}
        {{ exceptions.raise_compiler_error(
            "tracking plan not found: models/staging/tracking_plan.yml must define "
            ~ "config.meta.tracking_plan on the model stg_tracking_plan") }}
    {%- endif -%}
    {{ return(node.config.meta.tracking_plan) }}
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


{#- Every property name the plan declares, sorted: the positions used by json_kind_many and
    json_text_many over an event's properties (one parse per event for all checks). -#}
{% macro plan_property_paths() -%}
    {%- set names = [] -%}
    {%- for spec in tracking_plan().events.values() -%}
        {%- for name in ((spec or {}).get('properties') or {}).keys() -%}
            {%- if name not in names -%}{%- do names.append(name) -%}{%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- set paths = [] -%}
    {%- for name in names | sort -%}{%- do paths.append('$.' ~ name) -%}{%- endfor -%}
    {{ return(paths) }}
{%- endmacro %}


{#- A boolean SQL expression: true when the event named in `event_column` breaks `check` for any
    property of its tracking-plan entry. `kinds` and `texts` are arrays over plan_property_paths()
    (json_kind_many / json_text_many of the event's properties). check is one of:
    missing   - a required property is absent
    mistyped  - a present property has a JSON type the plan does not allow (as in JSON Schema,
                null is a type: allowed for optional properties, wrong for required ones)
    negative  - a numeric property with `min` >= 0 holds a negative value
    below_min - a numeric property is at least 0 but below its `min` -#}
{% macro tracking_plan_violation(check, event_column, kinds, texts) -%}
    {%- set paths = plan_property_paths() -%}
    {%- set clauses = [] -%}
    {%- for event_name, spec in tracking_plan().events.items() -%}
        {%- set conditions = [] -%}
        {%- for name, rule in ((spec or {}).get('properties') or {}).items() -%}
            {%- set position = paths.index('$.' ~ name) + 1 -%}
            {%- set kind = array_item(kinds, position) -%}
            {%- set number = try_cast(array_item(texts, position), 'double') -%}
            {%- if check == 'missing' and rule.get('required') -%}
                {%- do conditions.append(kind ~ " is null") -%}
            {%- elif check == 'mistyped' -%}
                {%- set allowed = plan_type_kinds(rule.type) + ([] if rule.get('required') else ['null']) -%}
                {%- do conditions.append(kind ~ " not in ('" ~ allowed | join("', '") ~ "')") -%}
            {%- elif check == 'negative' and rule.get('min') is not none and rule.min >= 0 -%}
                {%- do conditions.append(number ~ " < 0") -%}
            {%- elif check == 'below_min' and rule.get('min') is not none and rule.min > 0 -%}
                {%- do conditions.append(number ~ " >= 0 and " ~ number ~ " < " ~ rule.min) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if conditions -%}
            {%- do clauses.append("(" ~ event_column ~ " = '" ~ event_name | replace("'", "''")
                ~ "' and ((" ~ conditions | join(") or (") ~ ")))") -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if clauses -%}
        coalesce({{ clauses | join('\n        or ') }}, false)
    {%- else -%}
        false
    {%- endif -%}
{%- endmacro %}
