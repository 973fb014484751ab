{#- Pairwise overlap of current members. Grain: one row per (segment_a, segment_b), a < b. -#}

with

segments as (
    select * from {{ ref('dim_segments') }}
),

members as (
    select
        segment_name,
        canonical_user_id
    from {{ ref('fct_segment_membership') }}
    where status = 'member'
),

pairs as (
    select
        segment_a.segment_name as segment_a,
        segment_b.segment_name as segment_b,
        segment_a.size as size_a,
        segment_b.size as size_b
    from segments as segment_a
    inner join segments as segment_b
        on segment_a.segment_name < segment_b.segment_name
),

shared as (
    select
        members_a.segment_name as segment_a,
        members_b.segment_name as segment_b,
        count(*) as shared_members
    from members as members_a
    inner join members as members_b
        on members_a.canonical_user_id = members_b.canonical_user_id
            and members_a.segment_name < members_b.segment_name
    group by members_a.segment_name, members_b.segment_name
),

final as (
    select
        pairs.segment_a,
        pairs.segment_b,
        pairs.size_a,
        pairs.size_b,
        coalesce(shared.shared_members, 0) as shared_members,
        pairs.size_a + pairs.size_b - coalesce(shared.shared_members, 0) as union_members,
        case
            when pairs.size_a + pairs.size_b - coalesce(shared.shared_members, 0) > 0
                then cast(coalesce(shared.shared_members, 0) as double)
                    / (pairs.size_a + pairs.size_b - coalesce(shared.shared_members, 0))
        end as jaccard
    from pairs
    left join shared
        on pairs.segment_a = shared.segment_a
            and pairs.segment_b = shared.segment_b
)

select * from final
