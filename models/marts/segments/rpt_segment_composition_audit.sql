{#- Bias audit: composition of every segment (current members) and every cluster (fct_user_clusters,
    method:cluster_name, without the insufficient_data cluster -1; var segment_clusters_enabled)
    by every attribute listed in var bias_audit_attributes (columns of dim_user_profiles: a
    name, or {column: ..., source_column: ...} when a provenance column says how each value was
    obtained) and by every categorical trait the tracking plan declares (string or boolean, or
    with accepted values; judged by its _source column); a pii trait is never audited. Only observed values are judged: a value whose source is in var
    bias_audit_unobserved_sources (imputed) is counted in an 'imputed' cell, a missing one in an
    'unknown' cell; both are reported (shares of the whole group and population) but never
    flagged, and the shares, ratios and flags of observed values use observed values only.
    Cells under var segment_audit_min_cell are suppressed (counts and ratios nulled).
    Grain: one row per (group_type, group_name, attribute_name, attribute_value). -#}
{%- set min_cell = var('segment_audit_min_cell', 10) -%}
{%- set unobserved = var('bias_audit_unobserved_sources', ['imputed']) -%}
{%- set declared_traits = tracking_plan().traits -%}
{%- set audited = [] -%}
{%- for entry in var('bias_audit_attributes') -%}
    {%- set column = entry if entry is string else entry['column'] -%}
    {%- if (declared_traits.get(column) or {}).get('pii') -%}
        {{ exceptions.raise_compiler_error("bias_audit_attributes: '" ~ column ~ "' is a pii trait "
            ~ "(pii: true in the tracking plan): it is kept only as a keyed hash and never audited") }}
    {%- endif -%}
    {%- if entry is string -%}
        {%- do audited.append({'column': column, 'source_column': none}) -%}
    {%- else -%}
        {%- do audited.append({'column': column, 'source_column': entry.get('source_column')}) -%}
    {%- endif -%}
{%- endfor -%}
{#- declared categorical traits (type string or boolean, or with accepted values) are audited
    without a var edit, judged by their _source column; never a pii one -#}
{%- set listed = audited | map(attribute='column') | list -%}
{%- for name, rule in declared_traits.items() | sort -%}
    {%- set categorical = rule.get('type') in ['string', 'boolean'] or rule.get('accepted') -%}
    {%- if categorical and not rule.get('pii') and name not in listed -%}
        {%- do audited.append({'column': name, 'source_column': name ~ '_source'}) -%}
    {%- endif -%}
{%- endfor %}

with

profiles as (
    select * from {{ ref('dim_user_profiles') }}
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
    {%- for attribute in audited %}
        select
            canonical_user_id,
            '{{ attribute.column }}' as attribute_name,
            case
                when {{ attribute.column }} is null then 'unknown'
                {%- if attribute.source_column %}
                    when {{ attribute.source_column }} in ('{{ unobserved | join("', '") }}') then 'imputed'
                {%- endif %}
                else 'observed'
            end as value_status,
            cast({{ attribute.column }} as {{ dbt.type_string() }}) as observed_value
        from profiles
        {%- if not loop.last %}
            union all
        {%- endif %}
    {%- endfor %}
),

attribute_cells as (
    select
        canonical_user_id,
        attribute_name,
        value_status,
        case when value_status = 'observed' then observed_value else value_status end
            as attribute_value
    from attributes
),

population_size as (
    select count(*) as population_size
    from profiles
),

population_observed as (
    select
        attribute_name,
        count(case when value_status = 'observed' then 1 end) as population_observed
    from attribute_cells
    group by attribute_name
),

population_cells as (
    select
        attribute_name,
        attribute_value,
        value_status,
        count(*) as population_in_cell
    from attribute_cells
    group by attribute_name, attribute_value, value_status
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
        attribute_cells.attribute_name,
        attribute_cells.attribute_value,
        count(*) as members_in_cell
    from group_members
    inner join attribute_cells
        on group_members.canonical_user_id = attribute_cells.canonical_user_id
    group by
        group_members.group_type,
        group_members.group_name,
        attribute_cells.attribute_name,
        attribute_cells.attribute_value
),

group_observed as (
    select
        group_members.group_type,
        group_members.group_name,
        attribute_cells.attribute_name,
        count(*) as group_observed
    from group_members
    inner join attribute_cells
        on group_members.canonical_user_id = attribute_cells.canonical_user_id
    where attribute_cells.value_status = 'observed'
    group by
        group_members.group_type,
        group_members.group_name,
        attribute_cells.attribute_name
),

cells as (
    select
        group_names.group_type,
        group_names.group_name,
        population_cells.attribute_name,
        population_cells.attribute_value,
        population_cells.value_status,
        population_cells.population_in_cell,
        population_size.population_size,
        population_observed.population_observed,
        coalesce(group_sizes.group_size, 0) as group_size,
        coalesce(group_observed.group_observed, 0) as group_observed,
        coalesce(group_cells.members_in_cell, 0) as members_in_cell
    from group_names
    cross join population_cells
    cross join population_size
    inner join population_observed
        on population_cells.attribute_name = population_observed.attribute_name
    left join group_sizes
        on group_names.group_type = group_sizes.group_type
            and group_names.group_name = group_sizes.group_name
    left join group_observed
        on group_names.group_type = group_observed.group_type
            and group_names.group_name = group_observed.group_name
            and population_cells.attribute_name = group_observed.attribute_name
    left join group_cells
        on group_names.group_type = group_cells.group_type
            and group_names.group_name = group_cells.group_name
            and population_cells.attribute_name = group_cells.attribute_name
            and population_cells.attribute_value = group_cells.attribute_value
),

measured as (
    -- observed cells: shares of the observed values; unknown and imputed cells: shares of the
    -- whole group and population (how much of it is not observed)
    select
        *,
        value_status = 'observed' as is_observed,
        population_in_cell < {{ min_cell }}
        or (members_in_cell > 0 and members_in_cell < {{ min_cell }}) as is_suppressed,
        case
            when value_status = 'observed'
                then cast(members_in_cell as double) / nullif(group_observed, 0)
            else cast(members_in_cell as double) / nullif(group_size, 0)
        end as share_in_group,
        case
            when value_status = 'observed'
                then cast(population_in_cell as double) / nullif(population_observed, 0)
            else cast(population_in_cell as double) / nullif(population_size, 0)
        end as share_in_population,
        cast(members_in_cell as double) / population_in_cell as selection_rate
    from cells
),

rated as (
    select
        *,
        case when is_observed then share_in_group / share_in_population end as representation_ratio,
        max(case when not is_suppressed and is_observed then selection_rate end) over (
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
        value_status,
        case when not is_suppressed then members_in_cell end as members_in_cell,
        group_size,
        group_observed,
        case when not is_suppressed then population_in_cell end as population_in_cell,
        population_size,
        population_observed,
        case when not is_suppressed then share_in_group end as share_in_group,
        case when not is_suppressed then share_in_population end as share_in_population,
        case when not is_suppressed then representation_ratio end as representation_ratio,
        case
            when not is_suppressed and is_observed and highest_selection_rate > 0
                then selection_rate / highest_selection_rate
        end as impact_ratio,
        -- judged only on observed values, where the cell's expected members (observed members
        -- of the group x population share) reach the minimum: an empty cell of a tiny segment
        -- is no evidence, and an imputed value is no evidence at all
        coalesce(
            not is_suppressed
            and is_observed
            and group_observed * share_in_population >= {{ min_cell }}
            and representation_ratio < 0.8,
            false
        ) as is_four_fifths_flag,
        is_suppressed
    from rated
)

select * from final
