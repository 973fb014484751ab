{#- One row per (event_name, property_name) from models/staging/tracking_plan.yml. Every plan
    value is a quoted literal; min was checked to be a number (validate_tracking_plan). -#}
{%- set rows = [] -%}
{%- for event_name, spec in tracking_plan().events.items() -%}
    {%- set properties = (spec or {}).get('properties') or {} -%}
    {%- if not properties -%}
        {%- do rows.append([event_name, none, none, false, none]) -%}
    {%- endif -%}
    {%- for name, rule in properties.items() -%}
        {%- do rows.append([event_name, name, rule.type, rule.get('required', false), rule.get('min')]) -%}
    {%- endfor -%}
{%- endfor -%}

with

plan as (
    {%- for row in rows %}
    select
        {{ quoted_literal(row[0]) }} as event_name,
        {{ quoted_literal(row[1]) if row[1] is not none else 'cast(null as ' ~ text_type() ~ ')' }} as property_name,
        {{ quoted_literal(row[2]) if row[2] is not none else 'cast(null as ' ~ text_type() ~ ')' }} as property_type,
        {{ 'true' if row[3] else 'false' }} as is_required,
        cast({{ row[4] if row[4] is not none else 'null' }} as double) as minimum_value
    {% if not loop.last %}union all{% endif %}
    {%- else %}
    select
        cast(null as {{ text_type() }}) as event_name,
        cast(null as {{ text_type() }}) as property_name,
        cast(null as {{ text_type() }}) as property_type,
        false as is_required,
        cast(null as double) as minimum_value
    where false
    {%- endfor %}
),

final as (
    select * from plan
)

select * from final
