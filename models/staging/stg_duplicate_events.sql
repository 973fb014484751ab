{#- Repeated deliveries of a message_id already received (client retries): counted, not lost.
    Grain: one row per raw line (file_path, line_number). -#}
{{ config(materialized='view') }}

with

checked as (
    select * from {{ ref('stg_landing__events_checked') }}
),

final as (
    select
        file_path,
        line_number,
        loaded_at,
        message_id,
        event_type,
        event_name,
        event_at,
        received_at,
        raw_line
    from checked
    where status = 'duplicate'
)

select * from final
