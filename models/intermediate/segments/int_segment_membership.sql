{#- Current segment membership, compiled from the rules in models/marts/segments/segments.yml
    (or the var segment_definitions). Every rule is evaluated per profile in three-valued logic:
    true -> 'member', null -> 'pending' (a negative condition whose window has not closed at
    as_of), false -> no row. Only events at or before as_of count.
    Grain: one row per (segment_name, canonical_user_id) with status member or pending. -#}
{%- set compiled = segment_compile(segment_definitions()) -%}
{%- if var('segment_clusters_enabled', true) %}
-- depends_on: {{ ref('fct_user_clusters') }}
{%- endif %}

with

events as (
    select
        message_id,
        canonical_user_id,
        event_type,
        event_name,
        page_name,
        event_at,
        properties
    from {{ ref('int_events_stitched') }}
    where event_at <= {{ as_of() }}
),

profiles as (
    select * from {{ ref('dim_user_profiles') }}
),

{%- if compiled.clusters %}

clusters as (
    select * from {{ ref('fct_user_clusters') }}
),
{%- endif %}

event_counts as (
    select
        canonical_user_id,
        {%- for leaf in compiled.counts %}
        {{ segment_event_column_sql(leaf.spec, 'events') }} as leaf_{{ leaf.id }},
        {%- endfor %}
        count(*) as events
    from events
    group by canonical_user_id
),
{%- for leaf in compiled.follows %}
{%- set gap = segment_window_minutes('?', leaf.spec.not_followed_by.within, 'within') %}

leaf_{{ leaf.id }}_anchors as (
    select
        anchor.canonical_user_id,
        anchor.message_id,
        {{ dbt.dateadd('minute', gap, 'anchor.event_at') }} <= {{ as_of() }} as is_follow_window_closed,
        count(follow.event_at) > 0 as is_followed
    from events as anchor
    left join events as follow
        on
            anchor.canonical_user_id = follow.canonical_user_id
            and {{ segment_event_match_sql(leaf.spec.not_followed_by, 'follow') }}
            and follow.event_at > anchor.event_at
            and follow.event_at <= {{ dbt.dateadd('minute', gap, 'anchor.event_at') }}
    where {{ segment_event_match_sql(leaf.spec, 'anchor') }}
        and {{ segment_window_sql(leaf.spec, 'anchor.event_at') }}
    group by anchor.canonical_user_id, anchor.message_id, anchor.event_at
),

leaf_{{ leaf.id }}_follow as (
    select
        canonical_user_id,
        count(case when is_follow_window_closed and not is_followed then 1 end) as closed_unfollowed,
        count(case when not is_followed then 1 end) as unfollowed
    from leaf_{{ leaf.id }}_anchors
    group by canonical_user_id
),
{%- endfor %}
{%- for leaf in compiled.funnels %}
{%- set gap = segment_window_minutes('?', leaf.spec.max_gap, 'max_gap') if leaf.spec.get('max_gap') else none %}
{%- for step in leaf.spec.steps %}

leaf_{{ leaf.id }}_step_{{ loop.index }} as (
    select distinct
        step.canonical_user_id,
        step.event_at
    from events as step
    {%- if not loop.first %}
    inner join leaf_{{ leaf.id }}_step_{{ loop.index - 1 }} as previous
        on
            step.canonical_user_id = previous.canonical_user_id
            and step.event_at > previous.event_at
            {%- if gap %}
            and step.event_at <= {{ dbt.dateadd('minute', gap, 'previous.event_at') }}
            {%- endif %}
    {%- endif %}
    where {{ segment_event_match_sql(step, 'step') }}
        and {{ segment_window_sql(leaf.spec, 'step.event_at') }}
),
{%- endfor %}

leaf_{{ leaf.id }}_funnel as (
    select distinct canonical_user_id
    from leaf_{{ leaf.id }}_step_{{ leaf.spec.steps | length }}
),
{%- endfor %}
{%- for leaf in compiled.clusters %}

leaf_{{ leaf.id }}_cluster as (
    select distinct canonical_user_id
    from clusters
    where method = {{ segment_literal(leaf.spec.get('method', 'kmeans')) }}
        {%- if leaf.spec.get('cluster_id') is not none %}
        and cluster_id = {{ segment_literal(leaf.spec.cluster_id) }}
        {%- endif %}
        {%- if leaf.spec.get('cluster_name') is not none %}
        and cluster_name = {{ segment_literal(leaf.spec.cluster_name) }}
        {%- endif %}
),
{%- endfor %}

evaluated as (
    select
        {%- for segment in compiled.segments %}
        {{ segment.expression }} as {{ segment.column }},
        {%- endfor %}
        profiles.canonical_user_id
    from profiles
    left join event_counts
        on profiles.canonical_user_id = event_counts.canonical_user_id
    {%- for leaf in compiled.follows %}
    left join leaf_{{ leaf.id }}_follow
        on profiles.canonical_user_id = leaf_{{ leaf.id }}_follow.canonical_user_id
    {%- endfor %}
    {%- for leaf in compiled.funnels %}
    left join leaf_{{ leaf.id }}_funnel
        on profiles.canonical_user_id = leaf_{{ leaf.id }}_funnel.canonical_user_id
    {%- endfor %}
    {%- for leaf in compiled.clusters %}
    left join leaf_{{ leaf.id }}_cluster
        on profiles.canonical_user_id = leaf_{{ leaf.id }}_cluster.canonical_user_id
    {%- endfor %}
),

memberships as (
    {%- for segment in compiled.segments %}
    select
        '{{ segment.name }}' as segment_name,
        canonical_user_id,
        case when {{ segment.column }} then 'member' else 'pending' end as status
    from evaluated
    where {{ segment.column }} or {{ segment.column }} is null
    {% if not loop.last %}union all{% endif %}
    {%- else %}
    select
        cast(null as {{ dbt.type_string() }}) as segment_name,
        cast(null as {{ dbt.type_string() }}) as canonical_user_id,
        cast(null as {{ dbt.type_string() }}) as status
    from evaluated
    where false
    {%- endfor %}
),

final as (
    select * from memberships
)

select * from final
