{#- Current segment membership at as_of, compiled from the rules in the meta of this model
    (models/marts/segments/segments.yml, or the var segment_definitions). Every rule is evaluated
    per profile in three-valued logic: true -> 'member', null -> 'pending' (a condition whose
    window has not closed at as_of), false -> no row. Only events at or before as_of count.
    is_activatable = a member with the consent its segment requires.
    Touched-user incremental (macros/touched_users.sql): a run deletes and re-evaluates the rows
    of the users in int_touched_users, and sets computed_at to this as_of on every row; every
    user when a rule reads a column that changes for untouched users (segment_reads_every_user:
    a percentile score, the imputed age, a cluster).
    Grain: one row per (segment_name, canonical_user_id). -#}
{{ config(
    materialized=touched_users_or_table(),
    touched_every_user='segment_membership_reads_every_user',
    post_hook="{{ stamp_computed_at() }}",
) }}
{%- set definitions = segment_definitions() -%}
{%- set compiled = segment_compile(definitions) -%}
{%- set every_user = segment_reads_every_user(definitions) %}
-- depends_on: {{ ref('int_touched_users') }}
{%- if var('segment_cluster_conditions', false) %}
-- depends_on: {{ ref('fct_user_clusters') }}
{%- endif %}

with

as_of as (
    select {{ as_of() }} as as_of
),

params as (
    select
        {%- for column, expression in compiled.bounds.items() %}
        {{ expression }} as {{ column }},
        {%- endfor %}
        as_of
    from as_of
),

stitched_events as (
    select * from {{ touched_events(every_user) }}
    where {{ touched_users_only('canonical_user_id', every_user) }}
),

profiles as (
    select * from {{ ref('dim_user_profiles') }}
    where {{ touched_users_only('canonical_user_id', every_user) }}
),

consent as (
    select * from {{ ref('int_user_consent') }}
),
{%- if compiled.clusters %}

clusters as (
    select * from {{ ref('fct_user_clusters') }}
),
{%- endif %}

events as (
    select
        stitched_events.message_id,
        stitched_events.canonical_user_id,
        stitched_events.event_type,
        stitched_events.event_name,
        stitched_events.page_name,
        stitched_events.event_at,
        stitched_events.properties
    from stitched_events
    inner join params
        on stitched_events.event_at <= params.as_of
),

event_counts as (
    select
        events.canonical_user_id,
        {%- for leaf in compiled.counts %}
        {{ leaf.column }} as {{ leaf.name }},
        {%- endfor %}
        count(*) as events
    from events
    cross join params
    group by events.canonical_user_id
),
{%- for leaf in compiled.follows %}

{{ leaf.name }}_anchors as (
    select
        anchor.canonical_user_id,
        anchor.message_id,
        {{ leaf.follow_end }} <= params.as_of
            as is_follow_window_closed,
        count(follow.event_at) > 0 as is_followed
    from events as anchor
    cross join params
    left join events as follow
        on
            anchor.canonical_user_id = follow.canonical_user_id
            and {{ leaf.follow_match }}
            and follow.event_at > anchor.event_at
            and follow.event_at <= {{ leaf.follow_end }}
    where
        {{ leaf.anchor_filter }}
    group by anchor.canonical_user_id, anchor.message_id, anchor.event_at, params.as_of
),

{{ leaf.name }} as (
    select
        canonical_user_id,
        count(case when is_follow_window_closed and not is_followed then 1 end) as closed_unfollowed,
        count(case when not is_followed then 1 end) as unfollowed
    from {{ leaf.name }}_anchors
    group by canonical_user_id
),
{%- endfor %}
{%- for leaf in compiled.funnels %}
{%- for step_filter in leaf.steps %}

{{ leaf.name }}_step_{{ loop.index }} as (
    select distinct
        step.canonical_user_id,
        step.event_at
    from events as step
    cross join params
    {%- if not loop.first %}
    inner join {{ leaf.name }}_step_{{ loop.index - 1 }} as previous
        on
            step.canonical_user_id = previous.canonical_user_id
            and step.event_at > previous.event_at
            {%- if leaf.gap_end %}
            and step.event_at <= {{ leaf.gap_end }}
            {%- endif %}
    {%- endif %}
    where
        {{ step_filter }}
),
{%- endfor %}

{{ leaf.name }} as (
    select distinct canonical_user_id
    from {{ leaf.name }}_step_{{ leaf.steps | length }}
),
{%- endfor %}
{%- for leaf in compiled.clusters %}

{{ leaf.name }} as (
    select distinct canonical_user_id
    from clusters
    where
        method = {{ segment_literal(leaf.spec.get('method', 'kmeans')) }}
        {%- if leaf.spec.get('cluster_id') is not none %}
        and cluster_id = {{ segment_literal(leaf.spec.cluster_id) }}
        {%- endif %}
        {%- if leaf.spec.get('cluster_name') is not none %}
        and cluster_name = {{ segment_literal(leaf.spec.cluster_name) }}
        {%- endif %}
),
{%- endfor %}

conditions as (
    select
        {%- for leaf in compiled.conditions %}
        {%- for use in leaf.uses %}
        -- {{ use }}
        {%- endfor %}
        {{ leaf.condition }}
            as {{ leaf.name }},
        {%- endfor %}
        profiles.canonical_user_id
    from profiles
    cross join params
    left join event_counts
        on profiles.canonical_user_id = event_counts.canonical_user_id
    {%- for leaf in compiled.follows + compiled.funnels + compiled.clusters %}
    left join {{ leaf.name }}
        on profiles.canonical_user_id = {{ leaf.name }}.canonical_user_id
    {%- endfor %}
),

evaluated as (
    select
        {%- for segment in compiled.segments %}
        {{ segment.expression }} as {{ segment.name }},
        {%- endfor %}
        canonical_user_id
    from conditions
),

memberships as (
    {%- for segment in compiled.segments %}
    select
        '{{ segment.name }}' as segment_name,
        canonical_user_id,
        case when {{ segment.name }} then 'member' else 'pending' end as status
    from evaluated
    where {{ segment.name }} or {{ segment.name }} is null
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- else %}
    select
        cast(null as {{ dbt.type_string() }}) as segment_name,
        cast(null as {{ dbt.type_string() }}) as canonical_user_id,
        cast(null as {{ dbt.type_string() }}) as status
    from evaluated
    where false
    {%- endfor %}
),

required_consent as (
    {%- for segment in definitions %}
    select
        '{{ segment.name }}' as segment_name,
        '{{ segment.get("requires_consent", "personalization") }}' as requires_consent
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- else %}
    select
        cast(null as {{ dbt.type_string() }}) as segment_name,
        cast(null as {{ dbt.type_string() }}) as requires_consent
    where false
    {%- endfor %}
),

final as (
    select
        memberships.segment_name,
        memberships.canonical_user_id,
        memberships.status,
        memberships.status = 'member'
        and coalesce(case required_consent.requires_consent
            when 'advertising' then consent.has_advertising_consent
            else consent.has_personalization_consent
        end, false) as is_activatable,
        params.as_of as computed_at
    from memberships
    cross join params
    left join required_consent
        on memberships.segment_name = required_consent.segment_name
    left join consent
        on memberships.canonical_user_id = consent.canonical_user_id
)

select * from final
