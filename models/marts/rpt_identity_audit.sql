{#- Anonymous ids linked to more users than `max_users_per_anonymous_id` (shared devices, kiosks,
    tracking bugs). They are not merged into any user; the anonymous id is shown as its
    pseudonymous key. A device whose own lines refused what analytics_consent_policy requires
    (int_user_consent.is_profiling_allowed) is left out, as from every other mart.
    Grain: one row per anonymous_id. -#}

with

identity_map as (
    select * from {{ ref('int_identity_map') }}
),

links as (
    select * from {{ ref('int_identity_links') }}
),

identity_keys as (
    select * from {{ ref('restricted_identity_keys') }}
),

consent as (
    select * from {{ ref('int_user_consent') }}
),

shared_devices as (
    select
        identity_map.anonymous_id,
        identity_map.linked_users,
        min(links.first_linked_at) as first_linked_at,
        max(links.last_linked_at) as last_linked_at
    from identity_map
    inner join links
        on identity_map.anonymous_id = links.anonymous_id
    where identity_map.is_shared_device
    group by identity_map.anonymous_id, identity_map.linked_users
),

final as (
    -- the anonymous id as its pseudonymous key (raw ids stay in the restricted schema)
    select
        identity_keys.user_key as anonymous_id,
        shared_devices.linked_users,
        shared_devices.first_linked_at,
        shared_devices.last_linked_at
    from shared_devices
    inner join identity_keys
        on shared_devices.anonymous_id = identity_keys.raw_identity
    -- the analytics consent policy: a device it does not allow to be profiled is not shown
    inner join consent
        on identity_keys.user_key = consent.canonical_user_id
    where consent.is_profiling_allowed
)

select * from final
