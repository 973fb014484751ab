{#- Catalogue traits (trait_catalogue.yml) per user, over events up to as_of.
    Grain: one row per canonical_user_id. -#}
{%- set traits = trait_catalogue() -%}
{%- set modes = traits | selectattr('type', 'equalto', 'most_frequent') | list -%}

with

events as (
    select
        canonical_user_id,
        message_id,
        event_type,
        event_name,
        event_at,
        -- every property the catalogue reads, with one parse per event
        {{ json_text_many('properties', trait_property_paths() or ['$.none']) }} as trait_props
    from {{ ref('int_events_stitched') }}
    where event_at <= {{ as_of() }}
),

users as (
    select distinct canonical_user_id
    from {{ ref('int_events_stitched') }}
),

aggregated as (
    select
        canonical_user_id
        {{ catalogue_aggregate_columns(traits) }}
    from events
    group by canonical_user_id
),

-- one pair of CTEs per most_frequent trait (generated; the linter cannot indent a loop of CTEs)
-- noqa: disable=LT02
{% for trait in modes %}
{{ trait.name }}_counts as (
    select
        canonical_user_id,
        {{ trait_property(trait.property) }} as trait_value,
        count(*) as occurrences
    from events
    where
        {{ trait_event_condition(trait) }}
        and {{ trait_property(trait.property) }} is not null
    group by canonical_user_id, trait_value
),

{{ trait.name }}_ranked as (
    select
        canonical_user_id,
        trait_value,
        row_number() over (
            partition by canonical_user_id order by occurrences desc, trait_value asc
        ) as value_rank
    from {{ trait.name }}_counts
),

{% endfor %}
-- noqa: enable=LT02
final as (
    select
        users.canonical_user_id
        {{ catalogue_final_columns(traits) }}
    from users
    left join aggregated
        on users.canonical_user_id = aggregated.canonical_user_id
    {%- for trait in modes %}
        left join {{ trait.name }}_ranked
            on
                users.canonical_user_id = {{ trait.name }}_ranked.canonical_user_id
                and {{ trait.name }}_ranked.value_rank = 1
    {%- endfor %}
)

select * from final
