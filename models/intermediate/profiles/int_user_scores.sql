{#- The cross-user part of dim_user_profiles: the 1-5 recency, frequency and monetary scores,
    by percentile among all profiles (ties share a score). A score moves when any user's totals
    do, so this table holds every user on every run; it reads four columns of
    int_user_behaviour_totals, so it stays small and cheap (the wide profile is a view,
    dim_user_profiles, and never written whole). Grain: one row per canonical_user_id. -#}

with

behaviour as (
    select
        canonical_user_id,
        last_seen_at,
        sessions,
        revenue - refunded_amount as net_revenue
    from {{ ref('int_user_behaviour_totals') }}
),

scored as (
    select
        canonical_user_id,
        least(5, 1 + floor(5 * percent_rank() over (order by last_seen_at))) as recency_score,
        least(5, 1 + floor(5 * percent_rank() over (order by sessions))) as frequency_score,
        least(5, 1 + floor(5 * percent_rank() over (order by net_revenue))) as monetary_score
    from behaviour
),

final as (
    select
        canonical_user_id,
        cast(recency_score as integer) as recency_score,
        cast(frequency_score as integer) as frequency_score,
        cast(monetary_score as integer) as monetary_score
    from scored
)

select * from final
