{#- Events up to as_of() with a canonical user key: the pseudonymous user key
    (restricted_identity_keys) of the userId when present, else of the user its anonymous id was
    identified as (also for events before that identify), else of the anonymous id itself. The
    raw ids (userId, anonymousId, previousId) stop here: no mart can select them. Every model
    downstream sees no event after as_of (including the rest of its day). Users the
    analytics_consent_policy does not allow to be profiled are left out (int_user_consent). Grain: one row per message_id. A view: a join this cheap costs less than writing every event
    again, and it always reflects the current identity map. -#}
{{ config(materialized='view') }}

with

events as (
    select * from {{ ref('stg_events') }}
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

resolved as (
    select
        events.*,
        coalesce(events.user_id, identity_map.user_id, events.anonymous_id) as raw_canonical_id,
        case
            when events.user_id is not null then 'user_id'
            when identity_map.user_id is not null then 'stitched'
            else 'anonymous'
        end as identity_source
    from events
    left join identity_map
        on events.anonymous_id = identity_map.anonymous_id
    where events.event_at <= {{ as_of() }}
),

final as (
    select
        {{ star_exclude('resolved', ['user_id', 'anonymous_id', 'previous_id', 'raw_canonical_id']) }},
        identity_keys.user_key as canonical_user_id
    from resolved
    left join identity_keys
        on resolved.raw_canonical_id = identity_keys.raw_identity
    -- the analytics consent policy: a user it does not allow to be profiled is not seen here
    inner join consent
        on identity_keys.user_key = consent.canonical_user_id
    where consent.is_profiling_allowed
)

select * from final
