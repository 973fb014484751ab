{#- Every link between an anonymous id (or an alias's previousId) and a userId, from identify and
    any event carrying both, up to as_of() (a link made later does not exist yet).
    Incremental by load high-water mark (load_mark_state(), macros/touched_users.sql): a run
    recomputes, from all their lines, the links of the anonymous ids on lines loaded after the
    latest last_loaded_at here or stamped in (previous as_of, as_of]; a link never goes away
    between runs except by a privacy request, after which the table is rebuilt whole.
    Grain: one row per (anonymous_id, user_id). -#}
{{ config(
    materialized=incremental_or_table(),
    incremental_strategy='delete+insert',
    unique_key=['anonymous_id', 'user_id'],
    on_schema_change='fail',
    pre_hook="{{ load_mark_delete_all('last_loaded_at', 'event_at') }}",
) }}
-- depends_on: {{ ref('privacy_requests') }}
{%- set state = load_mark_state('last_loaded_at', 'event_at') %}

with

events as (
    select * from {{ ref('stg_events') }}
),

links as (
    select
        {{ identity_link_anonymous_id() }} as anonymous_id,
        user_id,
        event_at,
        loaded_at
    from events
    where
        event_at <= {{ as_of() }}
        and user_id is not null
        and coalesce(previous_id, anonymous_id) is not null
),

{%- if not state.full %}

touched as (
    -- the anonymous ids of the new lines (an anonymous id's links only grow between runs)
    select distinct {{ identity_link_anonymous_id() }} as anonymous_id
    from events
    where
        {{ state.new_lines }}
        and event_at <= {{ as_of() }}
        and user_id is not null
        and coalesce(previous_id, anonymous_id) is not null
),
{%- endif %}

selected as (
    select links.*
    from links
    {%- if not state.full %}
        where links.anonymous_id in (select touched.anonymous_id from touched)
    {%- endif %}
),

final as (
    select
        anonymous_id,
        user_id,
        min(event_at) as first_linked_at,
        max(event_at) as last_linked_at,
        count(*) as linking_events,
        max(loaded_at) as last_loaded_at
    from selected
    where anonymous_id != user_id
    group by anonymous_id, user_id
)

select * from final
