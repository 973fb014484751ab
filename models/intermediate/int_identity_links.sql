{#- Every link between an anonymous id (or an alias's previousId) and a userId, from identify and
    any event carrying both, up to as_of() (a link made later does not exist yet). Grain: one row per (anonymous_id, user_id). -#}

with

events as (
    select * from {{ ref('stg_events') }}
),

links as (
    select
        case when event_type = 'alias' then coalesce(previous_id, anonymous_id) else anonymous_id end
            as anonymous_id,
        user_id,
        event_at
    from events
    where
        event_at <= {{ as_of() }}
        and user_id is not null
        and coalesce(previous_id, anonymous_id) is not null
),

final as (
    select
        anonymous_id,
        user_id,
        min(event_at) as first_linked_at,
        max(event_at) as last_linked_at,
        count(*) as linking_events
    from links
    where anonymous_id != user_id
    group by anonymous_id, user_id
)

select * from final
