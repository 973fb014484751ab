{#- The per-user part of dim_user_profiles that reads events: activity totals (from
    fct_user_activity_daily), first and last seen, last order date, identification (its
    identified_events), sessions, time spent, and from the cart's and the e-mail lines alone the
    open cart and the latest e-mail hash (people reads it here, not from every stitched event).
    Nothing here depends on as_of beyond the event cut (events after as_of are not read) or on
    other users: dim_user_profiles adds the as_of-relative columns (days since, lifecycle) and
    the cross-user scores over every user, cheaply.
    Touched-user incremental (macros/touched_users.sql): a run deletes and recomputes the rows of
    the users in int_touched_users. Grain: one row per canonical_user_id. -#}
{{ config(materialized=touched_users_or_table()) }}
-- depends_on: {{ ref('int_touched_users') }}

with

activity_days as (
    select * from {{ ref('fct_user_activity_daily') }}
    where {{ touched_users_only('canonical_user_id') }}
),

sessions as (
    select * from {{ ref('fct_sessions') }}
    where {{ touched_users_only('canonical_user_id') }}
),

events as (
    -- the only events read one by one: the cart's and the lines that carry an e-mail (12% of
    -- the events in the generated data); everything else comes from the daily counts
    select * from {{ touched_events() }}
    where
        {{ touched_users_only('canonical_user_id') }}
        and (
            event_name in ('Product Added', 'Product Removed', 'Order Completed')
            or email_hash is not null
        )
),

activity as (
    select
        canonical_user_id,
        min(first_event_at) as first_seen_at,
        max(last_event_at) as last_seen_at,
        {{- sum_activity_counts() }}
        max(case when orders > 0 then activity_date end) as last_order_date,
        sum(identified_events) > 0 as is_identified
    from activity_days
    group by canonical_user_id
),

session_totals as (
    select
        canonical_user_id,
        count(*) as sessions,
        cast(sum(duration_seconds) as bigint) as time_spent_seconds
    from sessions
    group by canonical_user_id
),

cart_events as (
    select
        canonical_user_id,
        event_name,
        event_at,
        max(case when event_name = 'Order Completed' then event_at end) over (
            partition by canonical_user_id
        ) as last_order_at
    from events
    where event_name in ('Product Added', 'Product Removed', 'Order Completed')
),

open_carts as (
    select
        canonical_user_id,
        count(case when event_name = 'Product Added' then 1 end)
        > count(case when event_name = 'Product Removed' then 1 end) as has_open_cart
    from cart_events
    where
        event_name in ('Product Added', 'Product Removed')
        and (last_order_at is null or event_at > last_order_at)
    group by canonical_user_id
),

ranked_emails as (
    select
        canonical_user_id,
        email_hash,
        row_number() over (
            partition by canonical_user_id
            order by event_at desc, message_id desc
        ) as recency_rank
    from events
    where email_hash is not null
),

latest_emails as (
    -- the e-mail (keyed hash) of the user's latest line that carries one (people)
    select
        canonical_user_id,
        email_hash
    from ranked_emails
    where recency_rank = 1
),

final as (
    select
        activity.*,
        coalesce(session_totals.sessions, 0) as sessions,
        coalesce(session_totals.time_spent_seconds, 0) as time_spent_seconds,
        coalesce(open_carts.has_open_cart, false) as has_open_cart,
        latest_emails.email_hash
    from activity
    left join session_totals
        on activity.canonical_user_id = session_totals.canonical_user_id
    left join open_carts
        on activity.canonical_user_id = open_carts.canonical_user_id
    left join latest_emails
        on activity.canonical_user_id = latest_emails.canonical_user_id
)

select * from final
