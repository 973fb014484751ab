{#- The load manifest: one row per landing file loaded (path, size, content hash, rows, load time). -#}
{{ config(materialized='view') }}

with

raw_lines as (
    select * from {{ ref('raw_landing_events') }}
),

final as (
    select
        file_path,
        min(file_size) as file_size,
        min(file_hash) as file_hash,
        min(file_modified_at) as file_modified_at,
        count(*) as row_count,
        min(loaded_at) as loaded_at
    from raw_lines
    group by file_path
)

select * from final
