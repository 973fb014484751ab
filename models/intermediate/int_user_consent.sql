{#- Every canonical user's consent per category (personalization, advertising, analytics), and
    whether the analytics policy lets them be profiled. Consent always wins (docs/privacy.md):
    - signals are read from every judged line that carries one, staged or quarantined (a
      withdrawal on an event the tracking plan rejected still counts), from the places the
      `consent_signals` var names (context.consent.categoryPreferences on any call, the
      properties of a `Consent Updated` event, identify traits); duplicates are copies and are
      not read twice;
    - per category, signals are ordered by server time (receivedAt, else the client timestamp,
      else the load time), so a device clock behind the last grant cannot hide a withdrawal.
      A withdrawal stands until a grant newer by server time AND by client time (a late event
      carries the consent of its own, older moment); a tie, or a grant without a client time,
      goes to the withdrawal. A client time stamped in the future (a future_timestamp line) is
      not trusted: such a line has no client time, and it is ordered by receivedAt, else its
      load time. Withdrawals without any trusted client time are beaten by server time alone;
    - a withdrawal counts whenever it arrived, a grant only up to as_of;
    - a category without any signal takes the `consent_default` var;
    - analytics_consent_policy 'exclude': a user without analytics consent is not profiled
      (is_profiling_allowed false: int_events_stitched and fct_user_activity_daily drop their
      events, so no profile, cluster, segment or published row; shipped); 'profile': recorded
      only.
    Touched-user incremental (macros/touched_users.sql): a run deletes and recomputes the rows of
    the users in int_touched_users (a new signal is a new line, a grant coming into view as
    as_of passes it is an as_of band, a stitch touches old and new owners), reading only the
    lines of their identities (int_touched_identities).
    Grain: one row per canonical_user_id (every user, signal or not). -#}
{{ config(materialized=touched_users_or_table()) }}
-- depends_on: {{ ref('int_touched_users') }}

{%- set categories = consent_categories() -%}
{%- set defaults = var('consent_default') -%}
{%- set policy = var('analytics_consent_policy') -%}
{%- if policy not in ['profile', 'exclude'] -%}
    {{ exceptions.raise_compiler_error(
        "analytics_consent_policy must be 'profile' or 'exclude', not '" ~ policy ~ "'") }}
{%- endif %}

{#- signal_lines is read twice (every pair, then the contested users' pairs): on DuckDB a
    touched run keeps its users' signal lines (few), a full build reads the lines twice rather
    than keep every signal line (Spark has neither keyword; its tables are full builds) -#}
{%- set touched_run = this and is_incremental() %}
{%- set keep_signal_lines = '' if target.type != 'duckdb'
    else ('materialized' if touched_run else 'not materialized') %}

with

signal_lines as {{ keep_signal_lines }} (
    -- each line of the touched users' identities (every line on a full build) that carries a
    -- signal (duplicates are copies, not read twice): its pair, times and categories
    select
        judged.user_id,
        judged.anonymous_id,
        {{ consent_signal_at('judged') }} as consent_at,
        {{ consent_client_at('judged') }} as client_at,
        {%- for category in categories %}
            judged.consent_{{ category }}{% if not loop.last %},{% endif %}
        {%- endfor %}
    from ({{ touched_lines(ref('stg_landing__events_checked'), by_column=false) }}) as judged
    where
        judged.status != 'duplicate'
        and (
            {%- for category in categories %}
                judged.consent_{{ category }} is not null{% if not loop.last %} or{% endif %}
            {%- endfor %}
        )
),

identity_map as (
    select * from {{ ref('int_identity_map') }}
),

identity_keys as (
    select * from {{ ref('restricted_identity_keys') }}
),

canonical_users as (
    -- every key a mart can carry: each identity resolved through the identity map
    select distinct canonical_keys.user_key as canonical_user_id
    from identity_keys
    left join identity_map
        on identity_keys.raw_identity = identity_map.anonymous_id
    inner join identity_keys as canonical_keys
        on coalesce(identity_map.user_id, identity_keys.raw_identity) = canonical_keys.raw_identity
    where {{ touched_users_only('canonical_keys.user_key') }}
),

pair_states as (
    -- the lines grouped first by pair and by their categories' values (a person's consent
    -- seldom changes, and most lines repeat it): far fewer rows than lines, each with three
    -- latest times where grouping the lines by pair needs nine filtered maxima
    select
        user_id,
        anonymous_id,
        {%- for category in categories %}
            consent_{{ category }},
        {%- endfor %}
        max(consent_at) filter (where consent_at <= {{ as_of() }}) as latest_up_to_as_of,
        max(consent_at) as latest_at,
        max(client_at) as latest_client_at
    from signal_lines
    group by
        user_id,
        anonymous_id,
        {%- for category in categories %}
            consent_{{ category }}{% if not loop.last %},{% endif %}
        {%- endfor %}
),

pair_signals as (
    -- per (userId, anonymousId) pair and category: the latest grant by server time (a grant
    -- counts up to as_of), the latest withdrawal by server time and by client time (a
    -- withdrawal counts whenever it arrived). A pair resolves to one user, so the lines are
    -- grouped before the identity joins, which then read pairs, not lines.
    select
        user_id,
        anonymous_id,
        {%- for category in categories %}
            max(latest_up_to_as_of) filter (where consent_{{ category }}) as {{ category }}_granted_at,
            max(latest_at) filter (where not consent_{{ category }}) as {{ category }}_withdrawn_at,
            max(latest_client_at) filter (
                where not consent_{{ category }}
            ) as {{ category }}_withdrawn_client_at{% if not loop.last %},{% endif %}
        {%- endfor %}
    from pair_states
    group by user_id, anonymous_id
),

pair_users as (
    -- each pair with its user's key
    select
        identity_keys.user_key as canonical_user_id,
        pair_signals.*
    from pair_signals
    left join identity_map
        on pair_signals.anonymous_id = identity_map.anonymous_id
    inner join identity_keys
        on
            coalesce(pair_signals.user_id, identity_map.user_id, pair_signals.anonymous_id)
            = identity_keys.raw_identity
),

user_signals as (
    select
        canonical_user_id,
        {%- for category in categories %}
            max({{ category }}_granted_at) as {{ category }}_granted_at,
            max({{ category }}_withdrawn_at) as {{ category }}_withdrawn_at,
            max({{ category }}_withdrawn_client_at) as {{ category }}_withdrawn_client_at,
        {%- endfor %}
        greatest(
            {%- for category in categories %}
                max({{ category }}_granted_at),
                max({{ category }}_withdrawn_at){% if not loop.last %},{% endif %}
            {%- endfor %}
        ) as consent_updated_at
    from pair_users
    group by canonical_user_id
),

contested as (
    -- the (user, category) whose latest grant is newer than the latest withdrawal by server
    -- time while that withdrawal has a client time: granted only if some grant is newer by both
    -- clocks, which needs their lines (few: a change of mind after a withdrawal)
    {%- for category in categories %}
        select
            canonical_user_id,
            '{{ category }}' as category,
            {{ category }}_withdrawn_at as withdrawn_at,
            {{ category }}_withdrawn_client_at as withdrawn_client_at
        from user_signals
        where
            {{ category }}_granted_at > {{ category }}_withdrawn_at
            and {{ category }}_withdrawn_client_at is not null
        {% if not loop.last %}union all{% endif %}
    {%- endfor %}
),

contested_pairs as (
    select
        pair_users.user_id,
        pair_users.anonymous_id,
        contested.*
    from contested
    inner join pair_users
        on contested.canonical_user_id = pair_users.canonical_user_id
),

contested_lines as (
    -- the signal lines again, of which only the contested users' pairs are kept
    select * from signal_lines
),

regranted as (
    -- the contested (user, category) with a grant newer than the withdrawal by both clocks
    -- (a tie goes to the withdrawal; a grant without a trusted client time does not count)
    select
        contested_pairs.canonical_user_id,
        {%- for category in categories %}
            bool_or(
                contested_pairs.category = '{{ category }}'
                and contested_lines.consent_{{ category }}
            ) as {{ category }}_regranted{% if not loop.last %},{% endif %}
        {%- endfor %}
    from contested_lines
    inner join contested_pairs
        on
            contested_lines.user_id is not distinct from contested_pairs.user_id
            and contested_lines.anonymous_id is not distinct from contested_pairs.anonymous_id
    where
        contested_lines.consent_at <= {{ as_of() }}
        and contested_lines.consent_at > contested_pairs.withdrawn_at
        and contested_lines.client_at > contested_pairs.withdrawn_client_at
    group by contested_pairs.canonical_user_id
),

latest as (
    -- per category: no signal (null: the default applies), else granted when a grant is newer
    -- than every withdrawal by server time and by client time (a late event carries the
    -- consent of its own, older moment)
    select
        user_signals.canonical_user_id,
        {%- for category in categories %}
            case
                when
                    user_signals.{{ category }}_granted_at is null
                    and user_signals.{{ category }}_withdrawn_at is null
                    then null
                when user_signals.{{ category }}_granted_at is null then false
                when user_signals.{{ category }}_withdrawn_at is null then true
                when user_signals.{{ category }}_granted_at <= user_signals.{{ category }}_withdrawn_at
                    then false
                when user_signals.{{ category }}_withdrawn_client_at is null then true
                else coalesce(regranted.{{ category }}_regranted, false)
            end as consent_{{ category }},
        {%- endfor %}
        user_signals.consent_updated_at
    from user_signals
    left join regranted
        on user_signals.canonical_user_id = regranted.canonical_user_id
    where user_signals.consent_updated_at is not null
),

consent as (
    select
        canonical_users.canonical_user_id,
        {%- for category in categories %}
            coalesce(latest.consent_{{ category }}, {{ 'true' if defaults[category] else 'false' }})
                as has_{{ category }}_consent,
        {%- endfor %}
        latest.canonical_user_id is not null as has_consent_signal,
        latest.consent_updated_at
    from canonical_users
    left join latest
        on canonical_users.canonical_user_id = latest.canonical_user_id
),

final as (
    select
        *,
        {%- if policy == 'exclude' %}
            has_analytics_consent as is_profiling_allowed
        {%- else %}
            true as is_profiling_allowed
        {%- endif %}
    from consent
)

select * from final
