{#- Events up to as_of() with a canonical user key: the userId when present, else the user its
    anonymous id was identified as (also for events before that identify), else the anonymous id
    itself. Every model downstream sees no event after as_of (including the rest of its day).
    Grain: one row per message_id. A view: a join this cheap costs less than writing every event
    again, and it always reflects the current identity map. -#}
{{ config(materialized='view') }}

with

events as (
    select * from {{ ref('stg_events') }}
),

identity_map as (
    select * from {{ ref('int_identity_map') }}
),

final as (
    select
        events.*,
        coalesce(events.user_id, identity_map.user_id, events.anonymous_id) as canonical_user_id,
        case
            when events.user_id is not null then 'user_id'
            when identity_map.user_id is not null then 'stitched'
            else 'anonymous'
        end as identity_source
    from events
    left join identity_map
        on events.anonymous_id = identity_map.anonymous_id
    where events.event_at <= {{ as_of() }}
)

select * from final
