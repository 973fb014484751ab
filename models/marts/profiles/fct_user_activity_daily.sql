{#- Behaviour per canonical user and day: the incremental per-identity counts, re-keyed through
    the current identity map (which can change retroactively) to the pseudonymous user key;
    users the analytics_consent_policy does not allow to be profiled are left out.
    Touched-user incremental (macros/touched_users.sql): a run deletes and recomputes the rows of
    the users in int_touched_users, from the per-identity days of their identities
    (int_touched_identities). Grain: one row per (canonical_user_id, activity_date). -#}
{{ config(materialized=touched_users_or_table()) }}
-- depends_on: {{ ref('int_touched_users') }}

with

identity_days as (
    -- a row with no events is what is left of a day whose events all lie after as_of
    select * from {{ ref('int_identity_activity_daily') }}
    where
        events > 0
        and {{ touched_identities_only('identity_key') }}
),

identity_map as (
    select * from {{ ref('int_identity_map') }}
),

identity_keys as (
    select * from {{ ref('restricted_identity_keys') }}
),

consent as (
    select * from {{ ref('int_user_consent') }}
),

keyed as (
    -- the raw identity resolved through the identity map, then replaced by its pseudonymous key
    select
        {{ star_exclude('identity_days', ['identity_key', 'user_id_events']) }},
        -- sent with a userId, or stitched: every event of an anonymousId the map resolves
        case
            when identity_map.user_id is not null then identity_days.events
            else identity_days.user_id_events
        end as identified_events,
        identity_keys.user_key as canonical_user_id
    from identity_days
    left join identity_map
        on identity_days.identity_key = identity_map.anonymous_id
    left join identity_keys
        on coalesce(identity_map.user_id, identity_days.identity_key) = identity_keys.raw_identity
    -- the analytics consent policy: a user it does not allow to be profiled is left out
    inner join consent
        on identity_keys.user_key = consent.canonical_user_id
    where
        consent.is_profiling_allowed
        and {{ touched_users_only('identity_keys.user_key') }}
),

final as (
    select
        canonical_user_id,
        activity_date,
        {{- sum_activity_counts(as_money=true) }}
        cast(sum(identified_events) as bigint) as identified_events,
        min(first_event_at) as first_event_at,
        max(last_event_at) as last_event_at
    from keyed
    group by canonical_user_id, activity_date
)

select * from final
