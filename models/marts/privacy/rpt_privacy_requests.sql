{#- Privacy requests carried out (erasure by `personalization forget`, retention purges): when,
    how many identities, and the rows removed per layer. No PII: no id, pseudonym or e-mail.
    Grain: one row per request_id. -#}

with

requests as (
    select * from {{ ref('privacy_requests') }}
),

final as (
    select
        request_id,
        request_type,
        requested_at,
        completed_at,
        identities,
        landing_lines_removed,
        landing_files_rewritten,
        raw_rows_removed,
        staging_rows_removed,
        intermediate_rows_removed,
        marts_rows_removed,
        published_rows_removed,
        published_versions_rewritten,
        raw_rows_removed + staging_rows_removed + intermediate_rows_removed + marts_rows_removed
            as warehouse_rows_removed
    from requests
)

select * from final
