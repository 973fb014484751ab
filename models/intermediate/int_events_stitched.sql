{#- Events up to as_of() with a canonical user key: the pseudonymous user key
    (restricted_identity_keys) of the userId when present, else of the user its anonymous id was
    identified as (also for events before that identify), else of the anonymous id itself. The
    raw ids (userId, anonymousId, previousId) stop here: no mart can select them. Every model
    downstream sees no event after as_of (including the rest of its day). Users the
    analytics_consent_policy does not allow to be profiled are left out (int_user_consent).
    The stitching is stitch_events_ctes(), shared with int_touched_events (the same events of
    the touched users only, which the touched-user models read on a micro-batch).
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

identity_keys as (
    select * from {{ ref('restricted_identity_keys') }}
),

consent as (
    select * from {{ ref('int_user_consent') }}
),

{{ stitch_events_ctes('events') }},

final as (
    select * from stitched
)

select * from final
