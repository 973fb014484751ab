{#- Daily staged event volume against its trailing baseline (the median of the previous
    `volume_baseline_days` days), over complete days before as_of. A day is anomalous when it is below `volume_low_ratio` or above
    `volume_high_ratio` times the baseline, once the baseline has at least 3 days.
    Grain: one row per event_date up to as_of. -#}

with

events as (
    select * from {{ ref('stg_events') }}
    -- complete days only: the day as_of falls in is still filling up
    where event_at < {{ dbt.date_trunc('day', as_of()) }}
),

daily as (
    select
        cast(event_at as date) as event_date,
        count(*) as events
    from events
    group by cast(event_at as date)
),

baselines as (
    select
        event_date,
        events,
        median(events) over (
            order by event_date
            rows between {{ var('volume_baseline_days') }} preceding and 1 preceding
        ) as baseline_events,
        count(*) over (
            order by event_date
            rows between {{ var('volume_baseline_days') }} preceding and 1 preceding
        ) as baseline_days
    from daily
),

final as (
    select
        event_date,
        events,
        baseline_events,
        baseline_days,
        events / nullif(baseline_events, 0) as volume_ratio,
        coalesce(
            baseline_days >= 3
            and (
                events < {{ var('volume_low_ratio') }} * baseline_events
                or events > {{ var('volume_high_ratio') }} * baseline_events
            ),
            false
        ) as is_anomaly
    from baselines
)

select * from final
