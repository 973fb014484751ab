{#- Trait values that broke a trait rule. The event itself was kept (in stg_events) with the bad
    trait nulled. Grain: one row per (message_id, reason, trait_name). -#}
{{ config(materialized='view') }}

with

checked as (
    select * from {{ ref('stg_landing__events_checked') }}
),

issues as (
    select
        message_id,
        event_type,
        event_name,
        coalesce(user_id, anonymous_id) as identity_key,
        event_at,
        file_path,
        line_number,
        {{ unnest_array('trait_issues') }} as reason,
        rejected_age,
        rejected_country,
        rejected_city,
        rejected_gender
    from checked
    where status = 'staged'
),

declared_rejections as (
    -- declared traits (tracking plan `traits:`) whose value broke their rule
    select
        message_id,
        'invalid_trait' as reason,
        rejection.trait_name,
        rejection.rejected_value,
        event_type,
        event_name,
        event_at,
        file_path,
        line_number
    from (
        select
            *,
            {{ unnest_array('declared_trait_rejections') }} as rejection
        from checked
        where status = 'staged'
    ) as rejected
),

standard_rejections as (
    select
        message_id,
        reason,
        case reason
            when 'implausible_age' then 'age'
            when 'invalid_country' then 'country'
            when 'city_country_mismatch' then 'city_and_country'
            when 'invalid_gender' then 'gender'
        end as trait_name,
        case reason
            when 'implausible_age' then rejected_age
            when 'invalid_country' then rejected_country
            when 'city_country_mismatch' then rejected_city
            when 'invalid_gender' then rejected_gender
        end as rejected_value,
        event_type,
        event_name,
        event_at,
        file_path,
        line_number
    from issues
    where reason != 'invalid_trait'
),

final as (
    select * from standard_rejections
    union all
    select * from declared_rejections
)

select * from final
