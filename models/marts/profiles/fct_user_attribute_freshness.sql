{#- How fresh each key attribute of each profile is: when it was last observed, how many days
    before as_of, and whether that is stale (vars attribute_stale_days, activity_stale_days).
    A missing attribute is a row with is_missing. Grain: one row per (canonical_user_id,
    attribute_name). -#}

with

profiles as (
    select * from {{ ref('dim_user_profiles') }}
),

observations as (
    {%- for attribute in ['age', 'country', 'city', 'gender'] %}
        select
            canonical_user_id,
            is_identified,
            '{{ attribute }}' as attribute_name,
            {{ attribute }}_source as attribute_source,
            {{ attribute }}_observed_at as observed_at,
            {{ var('attribute_stale_days') }} as stale_after_days
        from profiles
        union all
    {%- endfor %}
    select
        canonical_user_id,
        is_identified,
        'activity' as attribute_name,
        'behaviour' as attribute_source,
        last_seen_at as observed_at,
        {{ var('activity_stale_days') }} as stale_after_days
    from profiles
),

final as (
    select
        canonical_user_id,
        is_identified,
        attribute_name,
        attribute_source,
        observed_at,
        {{ dbt.datediff('observed_at', as_of(), 'day') }} as observed_days_ago,
        stale_after_days,
        observed_at is null as is_missing,
        coalesce({{ dbt.datediff('observed_at', as_of(), 'day') }} > stale_after_days, false)
            as is_stale
    from observations
)

select * from final
