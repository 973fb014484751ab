{#- Conservation, on every build: raw lines = staged events + quarantined lines + duplicates.
    Returns one row (the four counts) when they do not add up. -#}
{{ config(meta={'dagster': {'ref': {'name': 'stg_events'}}}) }}

with

counts as (
    select
        (select count(*) from {{ ref('raw_landing_events') }}) as raw_lines,
        (select count(*) from {{ ref('stg_events') }}) as staged_events,
        (select count(*) from {{ ref('quarantined_events') }}) as quarantined_lines,
        (select count(*) from {{ ref('stg_duplicate_events') }}) as duplicate_lines
)

select *
from counts
where raw_lines != staged_events + quarantined_lines + duplicate_lines
