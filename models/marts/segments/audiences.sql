{#- Census warehouse-managed audiences: the audiences table. Grain: one row per id. -#}

with

segments as (
    select * from {{ ref('dim_segments') }}
),

final as (
    select
        segment_name as id,
        segment_name as name,  -- noqa: RF04
        description,
        activatable_size as size,
        computed_at as updated_at
    from segments
)

select * from final
