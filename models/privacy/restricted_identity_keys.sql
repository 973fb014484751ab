{#- The one table that maps the marts' pseudonymous user key back to the raw userId or
    anonymousId. Every mart keys a person by user_key (as canonical_user_id); the raw id lives
    here only, in the `restricted` schema, which is never published or exported. Activation
    reads it only for destinations that must match on the raw id (docs/privacy.md).
    The keyed HMAC is computed once per distinct identity, not per event.
    Incremental by load high-water mark (load_mark_state(), macros/touched_users.sql): a run
    reads only the lines loaded after the latest last_loaded_at here and hashes only identities
    it has not seen; an identity seen before keeps its row, its type widened to user_id when a
    new line sends it as a userId (and is_anonymous_id set when one sends it as an anonymousId).
    A full rebuild after a privacy request.
    Grain: one row per raw_identity. -#}
{{ config(
    schema='restricted',
    materialized=incremental_or_table(),
    incremental_strategy='delete+insert',
    unique_key='raw_identity',
    on_schema_change='fail',
    pre_hook="{{ load_mark_delete_all('last_loaded_at') }}",
) }}
-- depends_on: {{ ref('privacy_requests') }}
{%- set state = load_mark_state('last_loaded_at') %}

with

events as (
    select * from {{ ref('stg_events') }}
    where {{ state.new_lines }}
),

pairs as (
    -- the lines' (userId, anonymousId) pairs, each once: far fewer rows than lines to split
    select
        user_id,
        anonymous_id,
        max(loaded_at) as loaded_at
    from events
    where user_id is not null or anonymous_id is not null
    group by user_id, anonymous_id
),

identities as (
    select
        user_id as raw_identity,
        true as is_user_id,
        loaded_at
    from pairs
    where user_id is not null
    union all
    select
        anonymous_id as raw_identity,
        false as is_user_id,
        loaded_at
    from pairs
    where anonymous_id is not null
),

distinct_identities as (
    select
        raw_identity,
        bool_or(is_user_id) as is_user_id,
        bool_or(not is_user_id) as is_anonymous_id,
        max(loaded_at) as last_loaded_at
    from identities
    group by raw_identity
),

{%- if not state.full %}

known as (
    -- the rows of identities seen before: their key is kept, not hashed again
    select
        {{ this }}.raw_identity,
        {{ this }}.identity_type,
        {{ this }}.is_anonymous_id,
        {{ this }}.user_key
    from {{ this }}
    inner join distinct_identities
        on {{ this }}.raw_identity = distinct_identities.raw_identity
),
{%- endif %}

final as (
    select
        distinct_identities.raw_identity,
        case
            when distinct_identities.is_user_id
            {%- if not state.full %}
                or known.identity_type = 'user_id'
            {%- endif %}
                then 'user_id'
            else 'anonymous_id'
        end as identity_type,
        {%- if state.full %}
            distinct_identities.is_anonymous_id,
        {%- else %}
            distinct_identities.is_anonymous_id or coalesce(known.is_anonymous_id, false)
                as is_anonymous_id,
        {%- endif %}
        {%- if state.full %}
            {{ user_pseudonym('distinct_identities.raw_identity') }} as user_key,
        {%- else %}
            coalesce(known.user_key, {{ user_pseudonym('distinct_identities.raw_identity') }})
                as user_key,
        {%- endif %}
        distinct_identities.last_loaded_at
    from distinct_identities
    {%- if not state.full %}
        left join known
            on distinct_identities.raw_identity = known.raw_identity
    {%- endif %}
)

select * from final
