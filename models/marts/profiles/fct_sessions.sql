{#- Sessions: a user's page, screen and track events with no gap longer than
    `session_timeout_minutes`. Touched-user incremental (macros/touched_users.sql): a run deletes
    the sessions of the users in int_touched_users and rebuilds them from all their events, so a
    session that spans two micro-batches is one session. Grain: one row per session_id. -#}
{{ config(materialized=touched_users_or_table()) }}
-- depends_on: {{ ref('int_touched_users') }}

with

events as (
    select
        canonical_user_id,
        message_id,
        event_at,
        event_type,
        event_name,
        page_name,
        device_type,
        {{ json_text('properties', '$.path') }} as page_path
    from {{ touched_events() }}
    where
        event_type in ('page', 'screen', 'track')
        and {{ touched_users_only('canonical_user_id') }}
),

gaps as (
    select
        *,
        lag(event_at) over (
            partition by canonical_user_id order by event_at, message_id
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
        cast(sum(is_session_start) over (
            partition by canonical_user_id
            order by event_at, message_id
            rows between unbounded preceding and current row
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
        min_by(
            case when event_type in ('page', 'screen') then coalesce(page_path, page_name) end,
            case when event_type in ('page', 'screen') then event_at end
        ) as landing_page,
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
