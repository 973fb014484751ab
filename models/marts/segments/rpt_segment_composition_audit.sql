{#- Bias audit: composition of every segment (current members) and every cluster (fct_user_clusters,
    method:cluster_name, without the insufficient_data cluster -1; var segment_clusters_enabled) by age_band, gender and country
    against the eligible population (all profiles). Unknown values form their own cell and are
    never flagged. Cells under var segment_audit_min_cell are suppressed (counts and ratios
    nulled). Grain: one row per (group_type, group_name, attribute_name, attribute_value). -#}
{%- set min_cell = var('segment_audit_min_cell', 10) -%}

with

profiles as (
    select
        canonical_user_id,
        cast(age_band as {{ dbt.type_string() }}) as age_band,
        cast(gender as {{ dbt.type_string() }}) as gender,
        cast(country as {{ dbt.type_string() }}) as country
    from {{ ref('dim_user_profiles') }}
),

segments as (
    select * from {{ ref('dim_segments') }}
),

membership as (
    select * from {{ ref('fct_segment_membership') }}
),

clusters as (
    {%- if var('segment_clusters_enabled', true) %}
        select
            canonical_user_id,
            method,
            cluster_name
        from {{ ref('fct_user_clusters') }}
        where cluster_id != -1
    {%- else %}
        select
            cast(null as {{ dbt.type_string() }}) as canonical_user_id,
            cast(null as {{ dbt.type_string() }}) as method,
            cast(null as {{ dbt.type_string() }}) as cluster_name
        where false
    {%- endif %}
),

group_names as (
    select
        'segment' as group_type,
        segment_name as group_name
    from segments
    union
    select
        'cluster' as group_type,
        method || ':' || cluster_name as group_name
    from clusters
),

group_members as (
    select
        'segment' as group_type,
        segment_name as group_name,
        canonical_user_id
    from membership
    where status = 'member'
    union all
    select
        'cluster' as group_type,
        method || ':' || cluster_name as group_name,
        canonical_user_id
    from clusters
),

attributes as (
    select
        canonical_user_id,
        'age_band' as attribute_name,
        coalesce(age_band, 'unknown') as attribute_value
    from profiles
    union all
    select
        canonical_user_id,
        'gender' as attribute_name,
        coalesce(gender, 'unknown') as attribute_value
    from profiles
    union all
    select
        canonical_user_id,
        'country' as attribute_name,
        coalesce(country, 'unknown') as attribute_value
    from profiles
),

population_size as (
    select count(*) as population_size
    from profiles
),

population_cells as (
    select
        attribute_name,
        attribute_value,
        count(*) as population_in_cell
    from attributes
    group by attribute_name, attribute_value
),

group_sizes as (
    select
        group_type,
        group_name,
        count(*) as group_size
    from group_members
    group by group_type, group_name
),

group_cells as (
    select
        group_members.group_type,
        group_members.group_name,
        attributes.attribute_name,
        attributes.attribute_value,
        count(*) as members_in_cell
    from group_members
    inner join attributes
        on group_members.canonical_user_id = attributes.canonical_user_id
    group by
        group_members.group_type,
        group_members.group_name,
        attributes.attribute_name,
        attributes.attribute_value
),

cells as (
    select
        group_names.group_type,
        group_names.group_name,
        population_cells.attribute_name,
        population_cells.attribute_value,
        population_cells.population_in_cell,
        population_size.population_size,
        coalesce(group_sizes.group_size, 0) as group_size,
        coalesce(group_cells.members_in_cell, 0) as members_in_cell
    from group_names
    cross join population_cells
    cross join population_size
    left join group_sizes
        on group_names.group_type = group_sizes.group_type
            and group_names.group_name = group_sizes.group_name
    left join group_cells
        on group_names.group_type = group_cells.group_type
            and group_names.group_name = group_cells.group_name
            and population_cells.attribute_name = group_cells.attribute_name
            and population_cells.attribute_value = group_cells.attribute_value
),

measured as (
    select
        *,
        population_in_cell < {{ min_cell }}
        or (members_in_cell > 0 and members_in_cell < {{ min_cell }}) as is_suppressed,
        case
            when group_size > 0 then cast(members_in_cell as double) / group_size
        end as share_in_group,
        cast(population_in_cell as double) / population_size as share_in_population,
        cast(members_in_cell as double) / population_in_cell as selection_rate
    from cells
),

rated as (
    select
        *,
        share_in_group / share_in_population as representation_ratio,
        max(case when not is_suppressed and attribute_value != 'unknown' then selection_rate end) over (
            partition by group_type, group_name, attribute_name
        ) as highest_selection_rate
    from measured
),

final as (
    select
        group_type,
        group_name,
        attribute_name,
        attribute_value,
        case when not is_suppressed then members_in_cell end as members_in_cell,
        group_size,
        case when not is_suppressed then population_in_cell end as population_in_cell,
        population_size,
        case when not is_suppressed then share_in_group end as share_in_group,
        case when not is_suppressed then share_in_population end as share_in_population,
        case when not is_suppressed then representation_ratio end as representation_ratio,
        case
            when not is_suppressed and attribute_value != 'unknown' and highest_selection_rate > 0
                then selection_rate / highest_selection_rate
        end as impact_ratio,
        -- judged only where the cell's expected members (group size x population share) reach
        -- the minimum: an empty cell of a tiny segment is no evidence
        coalesce(
            not is_suppressed
            and attribute_value != 'unknown'
            and group_size * share_in_population >= {{ min_cell }}
            and representation_ratio < 0.8,
            false
        ) as is_four_fifths_flag,
        is_suppressed
    from rated
)

select * from final
