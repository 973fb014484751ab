{#- The canonical users to recompute in this run (the "this run" model of the touched-user
    incremental models: docs/architecture.md, "Touched users"). Relative to the previous run
    (touched_users_state(): the latest successful build that built every touched-user model this
    run builds), a user is touched when their output can change:
    - new lines: an identity (userId, anonymousId, previousId) of any judged line, staged or
      quarantined (consent signals count on both), loaded after the previous run's load
      high-water mark (touched_high_water_mark(): the latest loaded_at that run read, recorded
      in int_touched_user_runs); late events of any age count. Load stamps are compared with load
      stamps, so no lookback applies (var('lookback_hours') does not widen the touched set: at
      its default of 72 hours an hourly run would recompute every user with a line loaded in
      the last three days);
    - as_of moving forward from P to A: an identity with an event whose time crosses the edge of
      a window or threshold (touched_as_of_bands(): for each duration W that any segment rule,
      catalogue trait or lifecycle stage measures, P - W < event_at <= A - W; W = 0: events
      after P come into view); a consent signal received in (P, A] (a grant counts only up to
      as_of);
    - identity stitching: every user linked to a touched anonymous id (its owner before and
      after: int_identity_links only grows between runs), the anonymous id itself (its own key
      when unmerged or a shared device) and its current owner;
    - everything (is_full_rebuild) on a first build, --full-refresh, as_of moving backwards, or
      after a privacy request (erasure, retention purge);
    - everything (is_full_rebuild, the adaptive switch) when the users touched by the rules above
      are more than var('touched_full_rebuild_share') of every identity key: then every model
      reads the plain path (touched_run_is_full(): no touched-events copy), which is cheaper than
      the touched path past that share (docs/architecture.md, "Touched users").
    Grain: one row per canonical_user_id. -#}
-- depends_on: {{ ref('privacy_requests') }}
{%- set state = touched_users_state() %}

with

identity_map as (
    select * from {{ ref('int_identity_map') }}
),

identity_keys as (
    select * from {{ ref('restricted_identity_keys') }}
),

checked as (
    select * from {{ ref('stg_landing__events_checked') }}
),

identity_links as (
    select * from {{ ref('int_identity_links') }}
),

{#- the rules' conditions on a line, each a filter DuckDB can push into its scan (a range of
    one column against literals: it skips the row groups outside it); the lines are read once
    per condition (an `or` of them scanned every line of the history, 1.1 s of CPU a
    micro-batch at 10M events) -#}
{%- set conditions = [] %}
{%- if not state.full %}
    {%- do conditions.append("loaded_at > " ~ touched_high_water_mark(state)) %}
    {%- for band in touched_as_of_bands(state.definitions) %}
        {%- if band[0] is number %}
            {%- do conditions.append("event_at > " ~ dbt.dateadd('minute', -1 * band[0], state.as_of)
                ~ " and event_at <= " ~ dbt.dateadd('minute', -1 * band[1], as_of())) %}
        {%- else %}
            {%- do conditions.append(to_utc_timestamp(quoted_literal(band[1])) ~ " > " ~ state.as_of
                ~ " and " ~ to_utc_timestamp(quoted_literal(band[1])) ~ " <= " ~ as_of()
                ~ " and event_at >= " ~ to_utc_timestamp(quoted_literal(band[0]))
                ~ " and event_at <= " ~ to_utc_timestamp(quoted_literal(band[1]))) %}
        {%- endif %}
    {%- endfor %}
    {#- a consent signal received in (previous as_of, as_of]: its time is one of these three
        columns, so each is tried as a range (the exact rule applies in every case) -#}
    {%- set consent_carried = [] %}
    {%- for category in consent_categories() %}
        {%- do consent_carried.append("consent_" ~ category ~ " is not null") %}
    {%- endfor %}
    {%- for column in ['received_at', 'event_at', 'loaded_at'] %}
        {%- do conditions.append(column ~ " > " ~ state.as_of ~ " and " ~ column ~ " <= " ~ as_of()
            ~ " and " ~ consent_signal_at('checked') ~ " > " ~ state.as_of
            ~ " and " ~ consent_signal_at('checked') ~ " <= " ~ as_of()
            ~ " and (" ~ consent_carried | join(" or ") ~ ")") %}
    {%- endfor %}
{%- endif %}

new_lines as (
    -- lines whose identities' output can change (the rules above; none on a full rebuild)
    {%- for condition in conditions %}
        select
            user_id,
            anonymous_id,
            previous_id
        from checked
        where {{ condition }}
        {%- if not loop.last %}
            union all
        {%- endif %}
    {%- else %}
        select
            user_id,
            anonymous_id,
            previous_id
        from checked
        where false
    {%- endfor %}
),

line_identities as (
    select user_id as raw_identity from new_lines
    union
    select anonymous_id as raw_identity from new_lines
    union
    select previous_id as raw_identity from new_lines
),

raw_identities as (
    -- each touched identity and every user linked to it as an anonymous id (old and new
    -- owners); on a full rebuild, every identity
    select raw_identity from line_identities
    where raw_identity is not null
    union
    select identity_links.user_id as raw_identity
    from identity_links
    inner join line_identities
        on identity_links.anonymous_id = line_identities.raw_identity
    {%- if state.full %}
        union
        select raw_identity from identity_keys
    {%- endif %}
),

canonical_identities as (
    -- each identity as itself and as the user it resolves to
    select raw_identity from raw_identities
    union
    select identity_map.user_id as raw_identity
    from identity_map
    inner join raw_identities
        on identity_map.anonymous_id = raw_identities.raw_identity
    where identity_map.user_id is not null
),

touched as (
    select distinct identity_keys.user_key as canonical_user_id
    from canonical_identities
    inner join identity_keys
        on canonical_identities.raw_identity = identity_keys.raw_identity
),

share as (
    -- the adaptive switch: past var('touched_full_rebuild_share') of every key, recomputing
    -- every user through the plain path is cheaper than copying the touched users' events
    select
        {%- if state.full %}
            true as is_every_user
        {%- else %}
            (select count(*) from touched)
            > {{ var('touched_full_rebuild_share') }} * (select count(*) from identity_keys)
                as is_every_user
        {%- endif %}
),

recomputed as (
    select touched.canonical_user_id
    from touched
    union
    select identity_keys.user_key as canonical_user_id
    from identity_keys
    where (select is_every_user from share)
),

final as (
    select
        recomputed.canonical_user_id,
        share.is_every_user as is_full_rebuild,
        {%- if state.full %}
            {{ quoted_literal(state.full) }} as touched_reason,
        {%- else %}
            case
                when share.is_every_user then 'touched share above touched_full_rebuild_share'
                else 'incremental'
            end as touched_reason,
        {%- endif %}
        cast({{ state.as_of }} as timestamp) as previous_as_of,
        cast({{ state.finished_at }} as timestamp) as previous_finished_at,
        {{ as_of() }} as built_as_of
    from recomputed
    cross join share
)

select * from final
