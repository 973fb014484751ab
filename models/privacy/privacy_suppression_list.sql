{#- The suppression list: keyed pseudonyms of every identity erased by `personalization forget`,
    so that later events for them are dropped at staging (reason `suppressed`). Written by the
    erasure module (personalization/erasure.py), never by this model: it only creates the empty
    table, and `full_refresh=false` keeps it through `dbt build --full-refresh`.
    identity_hash = pseudonymise('suppressed:' || id), domain-separated so it equals no pseudonym
    used anywhere else. Grain: one row per identity_hash. -#}
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
        cast(null as {{ text_type() }}) as identity_hash,
        cast(null as {{ text_type() }}) as request_id,
        cast(null as timestamp) as suppressed_at
    where false
)

select * from final
