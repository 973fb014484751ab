{#- Anonymous ids linked to more users than `max_users_per_anonymous_id` (shared devices, kiosks,
    tracking bugs). They are not merged into any user. Grain: one row per anonymous_id. -#}

with

identity_map as (
    select * from {{ ref('int_identity_map') }}
),

links as (
    select * from {{ ref('int_identity_links') }}
),

final as (
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
)

select * from final
