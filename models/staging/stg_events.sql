{#- Valid, de-duplicated events. Grain: one row per message_id. PII-free: email only as an HMAC. -#}
{{ config(materialized='view') }}

with

checked as (
    select * from {{ ref('stg_landing__events_checked') }}
),

final as (
    select
        message_id,
        event_type,
        event_name,
        user_id,
        anonymous_id,
        previous_id,
        event_at,
        sent_at,
        received_at,
        loaded_at,
        arrival_delay_seconds,
        cast(event_at as date) < cast(received_at as date) as is_late,
        page_name,
        properties,
        trait_age,
        trait_country,
        trait_city,
        trait_state,
        trait_postal_code,
        trait_gender,
        email_hash,
        name_hash,
        custom_traits,
        order_id,
        order_amount,
        order_currency,
        consent_personalization,
        consent_advertising,
        consent_analytics,
        device_type,
        user_locale,
        file_path,
        line_number
    from checked
    where status = 'staged'
)

select * from final
