{#- Catalogue traits (trait_catalogue.yml) per user, over events up to as_of; a derived trait
    may also name a numeric trait the tracking plan declares (from int_user_attributes).
    Touched-user incremental (macros/touched_users.sql): a run deletes and recomputes the rows of
    the users in int_touched_users. Grain: one row per canonical_user_id. -#}
{{ config(materialized=touched_users_or_table()) }}
-- depends_on: {{ ref('int_user_attributes') }}
-- depends_on: {{ ref('int_touched_users') }}
{%- set traits = trait_catalogue() -%}
{%- set modes = traits | selectattr('type', 'equalto', 'most_frequent') | list -%}

{%- set property_names = trait_property_names() -%}
{%- set property_paths = [] -%}
{%- for name in property_names -%}{%- do property_paths.append(json_key_path(name)) -%}{%- endfor %}

with

stitched_events as (
    -- only the events some trait reads (a third of the generated events are of no trait)
    select * from {{ touched_events() }}
    where
        event_at <= {{ as_of() }}
        and {{ catalogue_events_condition() }}
        and {{ touched_users_only('canonical_user_id') }}
),

order_amounts as (
    select * from {{ ref('int_order_amounts') }}
),

{%- if declared_numeric_traits() %}

attributes as (
    -- declared numeric traits, for derived expressions that name them
    select * from {{ ref('int_user_attributes') }}
),
{%- endif %}

users as (
    select distinct canonical_user_id
    from {{ touched_events() }}
    where {{ touched_users_only('canonical_user_id') }}
),

event_properties as (
    -- every property the catalogue reads, with one parse per event
    select
        canonical_user_id,
        message_id,
        event_type,
        event_name,
        event_at,
        {{ json_text_many('properties', property_paths or ['$.none']) }} as property_texts
    from stitched_events
),

events as (
    -- each property as prop_<name>; prop_reporting_amount: the order's money (int_order_amounts)
    select
        event_properties.canonical_user_id,
        event_properties.message_id,
        event_properties.event_type,
        event_properties.event_name,
        event_properties.event_at,
        {%- if property_names %}
            {{ unpack_fields('event_properties.property_texts', property_names, 'prop_') }},
        {%- endif %}
        order_amounts.reporting_amount as {{ trait_property(catalogue_amount_property()) }}
    from event_properties
    left join order_amounts
        on event_properties.message_id = order_amounts.message_id
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
    {%- if declared_numeric_traits() %}
        left join attributes
            on users.canonical_user_id = attributes.canonical_user_id
    {%- endif %}
    {%- for trait in modes %}
        left join {{ trait.name }}_ranked
            on
                users.canonical_user_id = {{ trait.name }}_ranked.canonical_user_id
                and {{ trait.name }}_ranked.value_rank = 1
    {%- endfor %}
)

select * from final
