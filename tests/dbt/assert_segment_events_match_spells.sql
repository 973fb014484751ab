{#- Entered and exited events match the spells exactly: one entered event at each spell's
    valid_from, one exited event at each closed spell's valid_to, and no other event. (With
    assert_membership_spells_do_not_overlap this makes each user's events alternate.) -#}
with

history as (
    select * from {{ ref('fct_segment_membership_history') }}
),

events as (
    select * from {{ ref('fct_segment_events') }}
),

expected as (
    select
        segment_name,
        canonical_user_id,
        'entered' as event_type,
        valid_from as event_at,
        count(*) as expected_events
    from history
    group by segment_name, canonical_user_id, valid_from
    union all
    select
        segment_name,
        canonical_user_id,
        'exited' as event_type,
        valid_to as event_at,
        count(*) as expected_events
    from history
    where valid_to is not null
    group by segment_name, canonical_user_id, valid_to
),

actual as (
    select
        segment_name,
        canonical_user_id,
        event_type,
        event_at,
        count(*) as actual_events
    from events
    group by segment_name, canonical_user_id, event_type, event_at
),

final as (
    select
        coalesce(expected.segment_name, actual.segment_name) as segment_name,
        coalesce(expected.canonical_user_id, actual.canonical_user_id) as canonical_user_id,
        coalesce(expected.event_type, actual.event_type) as event_type,
        coalesce(expected.event_at, actual.event_at) as event_at,
        coalesce(expected.expected_events, 0) as expected_events,
        coalesce(actual.actual_events, 0) as actual_events
    from expected
    full outer join actual
        on
            expected.segment_name = actual.segment_name
            and expected.canonical_user_id = actual.canonical_user_id
            and expected.event_type = actual.event_type
            and expected.event_at = actual.event_at
    where coalesce(expected.expected_events, 0) != coalesce(actual.actual_events, 0)
)

select * from final
