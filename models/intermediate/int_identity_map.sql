{#- Which user each anonymous id resolves to. An anonymous id linked to more users than the
    `max_users_per_anonymous_id` var (a shared device) is not merged: its anonymous events stay
    under the anonymous id, and rpt_identity_audit lists it. Grain: one row per anonymous_id. -#}

with

links as (
    select * from {{ ref('int_identity_links') }}
),

per_anonymous_id as (
    select
        anonymous_id,
        count(*) as linked_users,
        -- with a limit above 1, the first user identified on the device takes its anonymous history
        {{ arg_min('user_id', 'first_linked_at') }} as first_user_id
    from links
    group by anonymous_id
),

final as (
    select
        anonymous_id,
        linked_users,
        linked_users > {{ var('max_users_per_anonymous_id') }} as is_shared_device,
        case when linked_users <= {{ var('max_users_per_anonymous_id') }} then first_user_id end
            as user_id
    from per_anonymous_id
)

select * from final
