{#- The load manifest: one row per landing file the raw load took or tried - loaded (rows read),
    unreadable (the error; the complete lines before it are loaded), re-delivered under another
    name, changed after loading (skipped under warn), or missing from the folder now.
    Files that are not JSON lines are reported in rpt_data_quality, not here.
    Grain: one row per file_path. -#}
{{ config(materialized='view') }}

with

raw_lines as (
    select * from {{ ref('raw_landing_events') }}
),

file_log as (
    select * from {{ source('raw_load', 'landing_file_log') }}
    where status != 'unsupported'
),

loaded_files as (
    select
        file_path,
        {{ arg_max('file_size', 'line_number') }} as file_size,
        {{ arg_max('file_hash', 'line_number') }} as file_hash,
        {{ arg_max('file_modified_at', 'line_number') }} as file_modified_at,
        count(*) as row_count,
        min(loaded_at) as loaded_at
    from raw_lines
    group by file_path
),

latest_log as (
    select
        file_path,
        {{ arg_max('status', 'logged_at') }} as load_status,
        {{ arg_max('detail', 'logged_at') }} as load_detail,
        {{ arg_max('file_size', 'logged_at') }} as logged_file_size,
        {{ arg_max('file_hash', 'logged_at') }} as logged_file_hash,
        {{ arg_max('file_modified_at', 'logged_at') }} as logged_file_modified_at,
        max(logged_at) as logged_at
    from file_log
    group by file_path
),

final as (
    select
        coalesce(loaded_files.file_path, latest_log.file_path) as file_path,
        coalesce(loaded_files.file_size, latest_log.logged_file_size) as file_size,
        coalesce(loaded_files.file_hash, latest_log.logged_file_hash) as file_hash,
        coalesce(loaded_files.file_modified_at, latest_log.logged_file_modified_at)
            as file_modified_at,
        coalesce(loaded_files.row_count, 0) as row_count,
        coalesce(loaded_files.loaded_at, latest_log.logged_at) as loaded_at,
        coalesce(latest_log.load_status, 'loaded') as load_status,
        latest_log.load_detail
    from loaded_files
    full outer join latest_log
        on loaded_files.file_path = latest_log.file_path
)

select * from final
