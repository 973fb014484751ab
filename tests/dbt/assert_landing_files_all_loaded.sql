{#- Says so in the build output (a warning) when a landing file was not loaded cleanly: unreadable,
    re-delivered, changed after loading, missing, or not a JSON-lines file at all. The details are
    in raw.raw_landing_files and raw.landing_file_log; the other files load regardless. -#}
{{ config(severity='warn') }}

with

files as (
    select * from {{ ref('raw_landing_files') }}
),

file_log as (
    select * from {{ source('raw_load', 'landing_file_log') }}
),

not_loaded as (
    select
        file_path,
        load_status as status,
        load_detail as detail
    from files
    where load_status not in ('loaded', 'appended')
),

unsupported as (
    select distinct
        file_path,
        status,
        detail
    from file_log
    where status = 'unsupported'
),

final as (
    select * from not_loaded
    union all
    select * from unsupported
)

select * from final
