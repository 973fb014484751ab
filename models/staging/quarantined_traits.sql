{#- Trait values that broke a trait rule. The event itself was kept (in stg_events) with the bad
    trait nulled. Grain: one row per (message_id, reason). -#}
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
        unnest(trait_issues) as reason,
        rejected_age,
        rejected_country,
        rejected_city,
        rejected_gender
    from checked
    where status = 'staged'
),

final as (
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
)

select * from final
