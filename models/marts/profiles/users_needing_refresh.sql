{#- Identified users to prompt for a profile refresh: a key attribute (age, country) is missing,
    only imputed, or stale. Anonymous visitors cannot be asked. Grain: one row per
    canonical_user_id. -#}

with

freshness as (
    select * from {{ ref('fct_user_attribute_freshness') }}
),

reasons as (
    select
        canonical_user_id,
        attribute_name,
        case
            when is_missing or attribute_source = 'imputed' then 'missing_' || attribute_name
            when is_stale then 'stale_' || attribute_name
        end as reason
    from freshness
    where
        is_identified
        and attribute_name in ('age', 'country')
        and (is_missing or is_stale or attribute_source = 'imputed')
),

final as (
    select
        canonical_user_id,
        {{ sorted_unique_list('reason', 'true') }} as reasons,
        count(*) as reason_count
    from reasons
    group by canonical_user_id
)

select * from final
