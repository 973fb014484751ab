{#- The one table that maps the marts' pseudonymous user key back to the raw userId or
    anonymousId. Every mart keys a person by user_key (as canonical_user_id); the raw id lives
    here only, in the `restricted` schema, which is never published or exported. Activation
    reads it only for destinations that must match on the raw id (docs/privacy.md).
    The keyed HMAC is computed once per distinct identity, not per event.
    Grain: one row per raw_identity. -#}
{{ config(schema='restricted') }}

with

events as (
    select * from {{ ref('stg_events') }}
),

identities as (
    select
        user_id as raw_identity,
        true as is_user_id
    from events
    where user_id is not null
    union all
    select
        anonymous_id as raw_identity,
        false as is_user_id
    from events
    where anonymous_id is not null
),

distinct_identities as (
    select
        raw_identity,
        bool_or(is_user_id) as is_user_id
    from identities
    group by raw_identity
),

final as (
    select
        raw_identity,
        case when is_user_id then 'user_id' else 'anonymous_id' end as identity_type,
        {{ user_pseudonym('raw_identity') }} as user_key
    from distinct_identities
)

select * from final
