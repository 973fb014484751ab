{#- Current membership at as_of, with activatability (consent). Grain: one row per
    (segment_name, canonical_user_id). -#}
{%- set definitions = segment_definitions() -%}

with

membership as (
    select * from {{ ref('int_segment_membership') }}
),

consent as (
    select * from {{ ref('int_user_consent') }}
),

required_consent as (
    {%- for segment in definitions %}
    select
        '{{ segment.name }}' as segment_name,
        '{{ segment.get("requires_consent", "personalization") }}' as requires_consent
    {% if not loop.last %}union all{% endif %}
    {%- else %}
    select
        cast(null as {{ dbt.type_string() }}) as segment_name,
        cast(null as {{ dbt.type_string() }}) as requires_consent
    where false
    {%- endfor %}
),

final as (
    select
        membership.segment_name,
        membership.canonical_user_id,
        membership.status,
        membership.status = 'member'
        and coalesce(case required_consent.requires_consent
            when 'advertising' then consent.has_advertising_consent
            else consent.has_personalization_consent
        end, false) as is_activatable,
        {{ as_of() }} as computed_at
    from membership
    left join required_consent
        on membership.segment_name = required_consent.segment_name
    left join consent
        on membership.canonical_user_id = consent.canonical_user_id
)

select * from final
