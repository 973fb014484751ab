{#- Every observation of a user attribute (age, country, city, state, postal_code, gender and
    every custom trait the tracking plan declares) with its source: user_feedback (a Profile
    Updated the user sent), declared (identify traits, or context.traits on any other call) or
    inferred (country from the locale of the user's device: the user's latest event with one,
    the only inferred observation that can win in int_user_attributes). Invalid values were
    nulled in staging, so they never appear here and can never override a valid one.
    Touched-user incremental (macros/touched_users.sql): a run deletes and recomputes the rows of
    the users in int_touched_users. Grain: one row per (message_id, attribute_name, source). -#}
{{ config(materialized=touched_users_or_table()) }}
{%- set declared_traits = tracking_plan().traits %}
-- depends_on: {{ ref('int_touched_users') }}

with

events as (
    select * from {{ touched_events() }}
    where
        event_at <= {{ as_of() }}
        and {{ touched_users_only('canonical_user_id') }}
),

countries as (
    select country_code from {{ ref('ref_countries') }}
),

stated as (
    select
        canonical_user_id,
        message_id,
        event_at,
        trait_age,
        trait_country,
        trait_city,
        trait_state,
        trait_postal_code,
        trait_gender,
        {%- for name, rule in declared_traits.items() %}
            {%- if rule.get('pii') %}
                {{ json_text('custom_traits', json_key_path(name)) }} as {{ field_column('trait_', name) }},
            {%- else %}
                cast({{ declared_trait_value('custom_traits', name, rule) }} as {{ text_type() }})
                    as {{ field_column('trait_', name) }},
            {%- endif %}
        {%- endfor %}
        case when event_name = 'Profile Updated' then 'user_feedback' else 'declared' end as source
    from events
    -- only events that state a trait (most events state none)
    where
        trait_age is not null
        or trait_country is not null
        or trait_city is not null
        or trait_state is not null
        or trait_postal_code is not null
        or trait_gender is not null
        or custom_traits is not null
),

inferred as (
    -- the country of the device's locale ('fr-FR'), on every event that has one
    select
        events.canonical_user_id,
        events.message_id,
        events.event_at as observed_at,
        countries.country_code
    from events
    inner join countries
        on upper(substr(events.user_locale, 4, 2)) = countries.country_code
    where events.user_locale like '__-__'
),

latest_inferred_at as (
    select
        canonical_user_id,
        max(observed_at) as observed_at
    from inferred
    group by canonical_user_id
),

latest_inferred as (
    -- one inferred observation per user, the one int_user_attributes would pick among them (the
    -- latest, then the greatest message id): the others can never win, and kept they were 96%
    -- of this table's rows (one per event with a locale)
    select
        inferred.canonical_user_id,
        inferred.observed_at,
        max(inferred.message_id) as message_id,
        {{ arg_max('inferred.country_code', 'inferred.message_id') }} as country_code
    from inferred
    inner join latest_inferred_at
        on
            inferred.canonical_user_id = latest_inferred_at.canonical_user_id
            and inferred.observed_at = latest_inferred_at.observed_at
    group by inferred.canonical_user_id, inferred.observed_at
),

unpivoted as (
    {%- for attribute in ['age', 'country', 'city', 'state', 'postal_code', 'gender'] + declared_traits.keys() | list %}
        select
            canonical_user_id,
            message_id,
            event_at as observed_at,
            {{ quoted_literal(attribute) }} as attribute_name,
            cast({{ field_column('trait_', attribute) }} as {{ text_type() }}) as attribute_value,
            source
        from stated
        where {{ field_column('trait_', attribute) }} is not null
        union all
    {%- endfor %}
    select
        canonical_user_id,
        message_id,
        observed_at,
        'country' as attribute_name,
        country_code as attribute_value,
        'inferred' as source
    from latest_inferred
),

final as (
    select
        *,
        case source
            when 'user_feedback' then 1
            when 'declared' then 2
            when 'inferred' then 3
            when 'imputed' then 4
        end as source_rank
    from unpivoted
)

select * from final
