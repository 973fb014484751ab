{#- Sessions: a user's page, screen and track events with no gap longer than
    `session_timeout_minutes`. Touched-user incremental (macros/touched_users.sql): a run deletes
    the sessions of the users in int_touched_users and rebuilds them from all their events, so a
    session that spans two micro-batches is one session.
    The two windows (the gap before each event, then the running count of session starts) sort
    every event of the users by time, carrying each event's columns through both sorts, so the
    events carry only what the sessions need: no message id (events at the same time are peers
    of one frame, and only the first of them can start a session, whichever the sort put
    first), and a path read only from page and screen views (a track event's properties are
    never parsed). Grain: one row per session_id. -#}
{{ config(materialized=touched_users_or_table()) }}
-- depends_on: {{ ref('int_touched_users') }}

with

events as (
    select
        canonical_user_id,
        event_at,
        event_type,
        event_name,
        device_type,
        -- what the session's landing page is, if this view is its first
        case
            when event_type in ('page', 'screen')
                then coalesce({{ json_text('properties', '$.path') }}, page_name)
        end as viewed_page
    from {{ touched_events() }}
    where
        event_type in ('page', 'screen', 'track')
        and {{ touched_users_only('canonical_user_id') }}
),

gaps as (
    select
        *,
        -- events at the same time see the same previous time: only one of them can start a
        -- session
        lag(event_at) over (
            partition by canonical_user_id order by event_at
        ) as previous_event_at
    from events
),

boundaries as (
    select
        *,
        case
            when previous_event_at is null then 1
            when {{ dbt.datediff('previous_event_at', 'event_at', 'second') }}
                > {{ var('session_timeout_minutes') }} * 60 then 1
            else 0
        end as is_session_start
    from gaps
),

numbered as (
    select
        *,
        -- a range frame: events at the same time (peers) count the same starts, so they share
        -- their session whichever of them started it
        cast(sum(is_session_start) over (
            partition by canonical_user_id
            order by event_at
            range between unbounded preceding and current row
        ) as bigint) as session_number
    from boundaries
),

sessions as (
    select
        canonical_user_id,
        session_number,
        min(event_at) as started_at,
        max(event_at) as ended_at,
        count(*) as events,
        count(case when event_type = 'page' then 1 end) as page_views,
        count(case when event_type = 'screen' then 1 end) as screen_views,
        count(case when event_name = 'Product Viewed' then 1 end) as product_views,
        count(case when event_name = 'Product Added' then 1 end) as cart_adds,
        count(case when event_name = 'Order Completed' then 1 end) as orders,
        -- the first view with a path or a name (a time only where there is a value: Spark's
        -- min_by would return a null value, DuckDB's skips it)
        min_by(viewed_page, case when viewed_page is not null then event_at end) as landing_page,
        min_by(device_type, case when device_type is not null then event_at end) as device_type
    from numbered
    group by canonical_user_id, session_number
),

final as (
    select
        {{ dbt.hash("canonical_user_id || '|' || cast(started_at as " ~ text_type() ~ ")") }} as session_id,
        canonical_user_id,
        session_number,
        started_at,
        ended_at,
        {{ dbt.datediff('started_at', 'ended_at', 'second') }} as duration_seconds,
        events,
        page_views,
        screen_views,
        product_views,
        cart_adds,
        orders,
        landing_page,
        device_type
    from sessions
)

select * from final
