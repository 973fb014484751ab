{#- Entered and exited events alternate per (segment, user), starting with entered, and there is
    one entered event per spell and one exited event per closed spell. -#}
with

history as (
    select * from {{ ref('fct_segment_membership_history') }}
),

events as (
    select * from {{ ref('fct_segment_events') }}
),

sequenced as (
    select
        segment_name,
        canonical_user_id,
        event_type,
        event_at,
        lag(event_type) over (
            partition by segment_name, canonical_user_id
            order by event_at, case when event_type = 'exited' then 0 else 1 end
        ) as previous_event_type
    from events
),

out_of_order as (
    select
        segment_name,
        canonical_user_id,
        'event ' || event_type || ' at ' || cast(event_at as varchar) || ' after '
        || coalesce(previous_event_type, 'nothing') as problem
    from sequenced
    where
        event_type = coalesce(previous_event_type, 'exited')
),

spell_counts as (
    select
        segment_name,
        canonical_user_id,
        count(*) as spells,
        count(valid_to) as closed_spells
    from history
    group by segment_name, canonical_user_id
),

event_counts as (
    select
        segment_name,
        canonical_user_id,
        count(case when event_type = 'entered' then 1 end) as entered,
        count(case when event_type = 'exited' then 1 end) as exited
    from events
    group by segment_name, canonical_user_id
),

miscounted as (
    select
        coalesce(spell_counts.segment_name, event_counts.segment_name) as segment_name,
        coalesce(spell_counts.canonical_user_id, event_counts.canonical_user_id)
            as canonical_user_id,
        'spells ' || cast(coalesce(spell_counts.spells, 0) as varchar) || ' / closed '
        || cast(coalesce(spell_counts.closed_spells, 0) as varchar) || ' but entered '
        || cast(coalesce(event_counts.entered, 0) as varchar) || ' / exited '
        || cast(coalesce(event_counts.exited, 0) as varchar) as problem
    from spell_counts
    full outer join event_counts
        on
            spell_counts.segment_name = event_counts.segment_name
            and spell_counts.canonical_user_id = event_counts.canonical_user_id
    where
        coalesce(spell_counts.spells, 0) != coalesce(event_counts.entered, 0)
        or coalesce(spell_counts.closed_spells, 0) != coalesce(event_counts.exited, 0)
),

final as (
    select * from out_of_order
    union all
    select * from miscounted
)

select * from final
