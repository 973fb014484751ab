{#- The log of privacy requests (erasure, retention purge) carried out by
    personalization/erasure.py, which appends to it; this model only creates the empty table and
    `full_refresh=false` keeps it through full refreshes. No PII: a request id, its kind, times
    and counts. Grain: one row per request_id. -#}
{{ config(
    materialized='incremental',
    schema='privacy',
    full_refresh=false,
    on_schema_change='fail',
    tags=['landing_independent'],
) }}

with

final as (
    select
        cast(null as {{ text_type() }}) as request_id,
        cast(null as {{ text_type() }}) as request_type,
        cast(null as timestamp) as requested_at,
        cast(null as timestamp) as completed_at,
        cast(null as integer) as identities,
        cast(null as bigint) as landing_lines_removed,
        cast(null as integer) as landing_files_rewritten,
        cast(null as bigint) as raw_rows_removed,
        cast(null as bigint) as staging_rows_removed,
        cast(null as bigint) as intermediate_rows_removed,
        cast(null as bigint) as marts_rows_removed,
        cast(null as bigint) as published_rows_removed,
        cast(null as integer) as published_versions_rewritten
    where false
)

select * from final
