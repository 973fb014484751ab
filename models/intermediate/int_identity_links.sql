{#- Every link between an anonymous id (or an alias's previousId) and a userId, from identify and
    any event carrying both, up to as_of() (a link made later does not exist yet).
    Incremental by load high-water mark (load_mark_state(), macros/touched_users.sql): a run
    reads only the lines loaded after the latest last_loaded_at here or stamped in (the table's
    built_as_of, as_of], each line exactly once (the table's mark and as_of are written with its
    rows), and merges them into the rows of their links: earliest and latest link time, count.
    A link never goes away between runs except by a privacy request, after which the table is
    rebuilt whole. Grain: one row per (anonymous_id, user_id). -#}
{{ config(
    materialized=incremental_or_table(),
    incremental_strategy='delete+insert',
    unique_key=['anonymous_id', 'user_id'],
    on_schema_change='fail',
    pre_hook="{{ load_mark_delete_all('last_loaded_at', 'event_at', none, 'built_as_of') }}",
) }}
-- depends_on: {{ ref('privacy_requests') }}
{%- set state = load_mark_state('last_loaded_at', 'event_at', none, 'built_as_of') %}

with

events as (
    select * from {{ ref('stg_events') }}
    where {{ state.new_lines }}
),

links as (
    select
        {{ identity_link_anonymous_id() }} as anonymous_id,
        user_id,
        event_at as first_linked_at,
        event_at as last_linked_at,
        1 as linking_events,
        loaded_at as last_loaded_at
    from events
    where
        event_at <= {{ as_of() }}
        and user_id is not null
        and coalesce(previous_id, anonymous_id) is not null
),

{%- if not state.full %}

known as (
    -- the rows of the links the new lines add to
    select
        this_table.anonymous_id,
        this_table.user_id,
        this_table.first_linked_at,
        this_table.last_linked_at,
        this_table.linking_events,
        this_table.last_loaded_at
    from {{ this }} as this_table
    inner join (select distinct anonymous_id, user_id from links) as touched
        on
            this_table.anonymous_id = touched.anonymous_id
            and this_table.user_id = touched.user_id
),
{%- endif %}

merged as (
    select * from links
    {%- if not state.full %}
        union all
        select * from known
    {%- endif %}
),

final as (
    select
        anonymous_id,
        user_id,
        min(first_linked_at) as first_linked_at,
        max(last_linked_at) as last_linked_at,
        cast(sum(linking_events) as bigint) as linking_events,
        max(last_loaded_at) as last_loaded_at,
        {{ as_of() }} as built_as_of
    from merged
    where anonymous_id != user_id
    group by anonymous_id, user_id
)

select * from final
