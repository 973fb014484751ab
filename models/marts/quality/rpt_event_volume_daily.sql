{#- Daily staged event volume on a full calendar - days without any event are rows with 0 - from
    the first event's day to the last complete day before as_of. Each day is compared with the
    median of the same weekday in the previous `volume_baseline_weeks` weeks (Sundays with
    Sundays), and is anomalous below `volume_low_ratio` or above `volume_high_ratio` times it once
    `volume_min_baseline_weeks` such days exist. The latest day also says whether the feed is dead:
    its newest event more than `volume_dead_feed_hours` before as_of. The dbt tests
    volume_latest_day_within_baseline and feed_alive on this model are the one volume check (and
    Dagster shows them as the model's asset checks).
    Grain: one row per event_date. -#}

with

events as (
    select * from {{ ref('stg_events') }}
    where event_at < {{ as_of() }}
),

daily_counts as (
    select
        cast(event_at as date) as event_date,
        count(*) as events
    from events
    group by cast(event_at as date)
),

bounds as (
    -- the day as_of falls in is still filling up: complete days only
    select
        min(daily_counts.event_date) as first_date,
        cast({{ dbt.dateadd('day', -1, dbt.date_trunc('day', as_of())) }} as date) as last_date,
        (select max(events.event_at) from events) as newest_event_at
    from daily_counts
),

calendar as (
    select
        {{ day_series('first_date', 'last_date') }} as event_date
    from bounds
    where first_date <= last_date
),

daily as (
    select
        calendar.event_date,
        coalesce(daily_counts.events, 0) as events
    from calendar
    left join daily_counts
        on calendar.event_date = daily_counts.event_date
),

baselines as (
    select
        event_date,
        events,
        {{ median('events') }} over (
            partition by extract(dow from event_date)
            order by event_date
            rows between {{ var('volume_baseline_weeks') }} preceding and 1 preceding
        ) as baseline_events,
        count(*) over (
            partition by extract(dow from event_date)
            order by event_date
            rows between {{ var('volume_baseline_weeks') }} preceding and 1 preceding
        ) as baseline_days
    from daily
),

final as (
    select
        baselines.event_date,
        baselines.events,
        baselines.baseline_events,
        baselines.baseline_days,
        baselines.events / nullif(baselines.baseline_events, 0) as volume_ratio,
        coalesce(
            baselines.baseline_days >= {{ var('volume_min_baseline_weeks') }}
            and (
                baselines.events < {{ var('volume_low_ratio') }} * baselines.baseline_events
                or baselines.events > {{ var('volume_high_ratio') }} * baselines.baseline_events
            ),
            false
        ) as is_anomaly,
        baselines.event_date = bounds.last_date as is_latest_day,
        bounds.newest_event_at,
        {{ dbt.datediff('bounds.newest_event_at', as_of(), 'hour') }} as hours_since_newest_event,
        baselines.event_date = bounds.last_date
        and {{ dbt.datediff('bounds.newest_event_at', as_of(), 'hour') }}
        > {{ var('volume_dead_feed_hours') }} as is_dead_feed
    from baselines
    cross join bounds
)

select * from final
