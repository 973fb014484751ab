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

with

checked as (
    -- the lines of the touched users' identities (every line on a full build)
    {{ touched_lines(ref('stg_landing__events_checked'), by_column=false) }}
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

signal_lines as (
    -- each line that carries a signal, with its user's key: resolved once per line, before
    -- the line is split by category
    select
        identity_keys.user_key as canonical_user_id,
        {{ consent_signal_at('checked') }} as consent_at,
        {{ consent_client_at('checked') }} as client_at,
        {%- for category in categories %}
            checked.consent_{{ category }}{% if not loop.last %},{% endif %}
        {%- endfor %}
    from checked
    left join identity_map
        on checked.anonymous_id = identity_map.anonymous_id
    inner join identity_keys
        on
            coalesce(checked.user_id, identity_map.user_id, checked.anonymous_id)
            = identity_keys.raw_identity
    where
        checked.status != 'duplicate'
        and (
            {%- for category in categories %}
                checked.consent_{{ category }} is not null{% if not loop.last %} or{% endif %}
            {%- endfor %}
        )
),

signals as (
    -- one row per (line, category) that carries a value
    {%- for category in categories %}
        select
            canonical_user_id,
            '{{ category }}' as category,
            consent_{{ category }} as is_granted,
            consent_at,
            client_at
        from signal_lines
        where
            consent_{{ category }} is not null
            and (
                not consent_{{ category }}
                or consent_at <= {{ as_of() }}
            )
        {% if not loop.last %}union all{% endif %}
    {%- endfor %}
),

withdrawals as (
    -- per user and category, the latest withdrawal by server time and by client time
    select
        canonical_user_id,
        category,
        max(consent_at) as withdrawn_at,
        max(client_at) as withdrawn_client_at
    from signals
    where not is_granted
    group by canonical_user_id, category
),

per_category as (
    -- granted when a grant is newer than every withdrawal by server time and by client time
    -- (a late event carries the consent of its own, older moment); a tie goes to the withdrawal
    select
        signals.canonical_user_id,
        signals.category,
        coalesce(bool_or(
            signals.is_granted
            and (
                withdrawals.withdrawn_at is null
                or (
                    signals.consent_at > withdrawals.withdrawn_at
                    and (
                        withdrawals.withdrawn_client_at is null
                        or signals.client_at > withdrawals.withdrawn_client_at
                    )
                )
            )
        ), false) as is_granted,
        max(signals.consent_at) as consent_at
    from signals
    left join withdrawals
        on
            signals.canonical_user_id = withdrawals.canonical_user_id
            and signals.category = withdrawals.category
    group by signals.canonical_user_id, signals.category
),

latest as (
    select
        canonical_user_id,
        {%- for category in categories %}
            bool_or(is_granted) filter (where category = '{{ category }}') as consent_{{ category }},
        {%- endfor %}
        max(consent_at) as consent_updated_at
    from per_category
    group by canonical_user_id
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
