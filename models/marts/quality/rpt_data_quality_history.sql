{#- One snapshot of rpt_data_quality per build, kept across builds (incremental), so quality has
    a trend: each build writes every figure of rpt_data_quality stamped with its as_of
    (snapshot_at). A re-run at the same as_of replaces that snapshot (delete+insert), so a retry
    never doubles a day; earlier snapshots are never touched.
    Grain: one row per (snapshot_at, metric_group, metric_name, dimension). -#}
{{ config(
    materialized=incremental_or_table(),
    incremental_strategy='delete+insert',
    unique_key=['snapshot_at', 'metric_group', 'metric_name', 'dimension'],
    on_schema_change='fail',
) }}

with

quality as (
    select * from {{ ref('rpt_data_quality') }}
),

final as (
    select
        cast({{ as_of() }} as {{ dbt.type_timestamp() }}) as snapshot_at,
        metric_group,
        metric_name,
        dimension,
        metric_value
    from quality
)

select * from final
