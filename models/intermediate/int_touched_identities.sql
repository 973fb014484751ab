{#- The raw identities whose lines can belong to a user this run recomputes: each touched user's
    own raw identity (its userId, or the anonymous id of an unmerged visitor or a shared device)
    and every anonymous id the identity map resolves to one of them. The touched-user models
    take the lines of these identities (touched_lines: a lookup by the raw ids)
    before any stitching join, then key them and keep the touched users' rows
    (docs/architecture.md, "Touched users"). Every identity on a full rebuild.
    Grain: one row per raw_identity. -#}

with

touched as (
    select * from {{ ref('int_touched_users') }}
),

identity_keys as (
    select * from {{ ref('restricted_identity_keys') }}
),

identity_map as (
    select * from {{ ref('int_identity_map') }}
),

own_identities as (
    -- the raw identity each touched user key stands for
    select identity_keys.raw_identity
    from identity_keys
    inner join touched
        on identity_keys.user_key = touched.canonical_user_id
),

stitched_identities as (
    -- the anonymous ids identified as a touched user
    select identity_map.anonymous_id as raw_identity
    from identity_map
    inner join own_identities
        on identity_map.user_id = own_identities.raw_identity
),

identities as (
    select raw_identity from own_identities
    union
    select raw_identity from stitched_identities
),

final as (
    -- which columns of the staged lines can hold each identity (restricted_identity_keys: a
    -- userId ever, an anonymousId ever), so a model looks it up only there (touched_lines())
    select
        identities.raw_identity,
        coalesce(identity_keys.identity_type = 'user_id', false) as is_user_id,
        coalesce(identity_keys.is_anonymous_id, false) as is_anonymous_id
    from identities
    left join identity_keys
        on identities.raw_identity = identity_keys.raw_identity
)

select * from final
