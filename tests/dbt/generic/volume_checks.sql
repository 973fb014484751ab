{#- The volume check, defined once (rpt_event_volume_daily computes the flags from vars):
    the latest complete day is within its same-weekday baseline (severity from the var
    volume_check_severity, warn by default: a volume swing is worth a look, not a stopped build). -#}
{% test volume_latest_day_within_baseline(model) %}
    {{ config(severity=var('volume_check_severity', 'warn')) }}
    select *
    from {{ model }}
    where is_latest_day and is_anomaly
{% endtest %}

{#- A dead feed fails loudly: the newest event is more than volume_dead_feed_hours before as_of,
    or no complete day before as_of has any event at all. -#}
{% test feed_alive(model) %}
    with

    days as (
        select * from {{ model }}
    ),

    dead as (
        select
            event_date,
            newest_event_at,
            hours_since_newest_event,
            'newest event ' || cast(hours_since_newest_event as {{ text_type() }})
            || ' hours before as_of' as reason
        from days
        where is_dead_feed
    ),

    empty as (
        select
            cast(null as date) as event_date,
            cast(null as timestamp) as newest_event_at,
            cast(null as bigint) as hours_since_newest_event,
            'no complete day with events before as_of' as reason
        where not exists (select 1 from days)
    ),

    final as (
        select * from dead
        union all
        select * from empty
    )

    select * from final
{% endtest %}
