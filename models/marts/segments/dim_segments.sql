{#- The segment catalogue (definitions from segments.yml). Grain: one row per segment_name. -#}
{%- set definitions = segment_definitions() -%}

with

membership as (
    select * from {{ ref('fct_segment_membership') }}
),

definitions as (
    {%- for segment in definitions %}
    select
        '{{ segment.name }}' as segment_name,
        {{ segment_literal(segment.description | trim) }} as description,
        {{ segment_literal(segment.owner) }} as owner,
        {{ segment_literal(tojson(segment.rule, sort_keys=true)) }} as definition,
        cast({{ segment.get('min_size') if segment.get('min_size') is not none else 'null' }} as integer) as min_size,
        '{{ segment.get("requires_consent", "personalization") }}' as requires_consent
    {% if not loop.last %}union all{% endif %}
    {%- else %}
    select
        cast(null as {{ dbt.type_string() }}) as segment_name,
        cast(null as {{ dbt.type_string() }}) as description,
        cast(null as {{ dbt.type_string() }}) as owner,
        cast(null as {{ dbt.type_string() }}) as definition,
        cast(null as integer) as min_size,
        cast(null as {{ dbt.type_string() }}) as requires_consent
    where false
    {%- endfor %}
),

sizes as (
    select
        segment_name,
        count(case when status = 'member' then 1 end) as size,
        count(case when status = 'pending' then 1 end) as pending_users,
        count(case when is_activatable then 1 end) as activatable_size
    from membership
    group by segment_name
),

final as (
    select
        definitions.segment_name,
        definitions.description,
        definitions.owner,
        definitions.definition,
        {{ dbt.hash('definitions.definition') }} as version_hash,
        coalesce(sizes.size, 0) as size,
        coalesce(sizes.pending_users, 0) as pending_users,
        coalesce(sizes.activatable_size, 0) as activatable_size,
        definitions.min_size,
        definitions.requires_consent,
        {{ as_of() }} as computed_at
    from definitions
    left join sizes
        on definitions.segment_name = sizes.segment_name
)

select * from final
