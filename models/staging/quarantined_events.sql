{#- Rejected landing lines with every reason that applies and the raw text, for inspection and
    replay. Grain: one row per raw line (file_path, line_number). -#}
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
        reasons,
        {{ array_size('reasons') }} as reason_count,
        message_id,
        event_type,
        event_name,
        event_at,
        received_at,
        raw_line
    from checked
    where status = 'quarantined'
)

select * from final
