{#- One row per run of the touched-user models: the build and a hash of every definition and var
    that shapes their rows (touched_users_definitions_hash()). The next run compares its own hash
    with the one its previous run (touched_users_state()) recorded, and recomputes every user
    when they differ: an edited segment, trait catalogue, tracking plan or var needs no manual
    --full-refresh. The load high-water mark (the latest loaded_at of the judged lines this run
    read) is where the next run's new lines start (touched_high_water_mark()). Built after int_touched_users, so a run that fails before it records nothing
    and the next run compares with an older, successful one. Grain: one row per build_id. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
) }}

with

touched as (
    select * from {{ ref('int_touched_users') }}
),

checked as (
    select * from {{ ref('stg_landing__events_checked') }}
),

final as (
    select
        '{{ invocation_id }}' as build_id,
        '{{ touched_users_definitions_hash() }}' as definitions_hash,
        {{ as_of() }} as built_as_of,
        (select count(*) from touched) as touched_users,
        coalesce((select bool_or(is_full_rebuild) from touched), true) as is_full_rebuild,
        (select max(loaded_at) from checked) as loaded_high_water_mark
)

select * from final
