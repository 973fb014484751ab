{#- The winning observation per user and attribute: the best source (user_feedback > declared >
    inferred), then the latest. Imputation fills gaps later, in dim_user_profiles.
    Grain: one row per canonical_user_id. -#}

with

observations as (
    select * from {{ ref('int_user_attribute_observations') }}
),

ranked as (
    select
        *,
        row_number() over (
            partition by canonical_user_id, attribute_name
            order by source_rank asc, observed_at desc, message_id desc
        ) as preference
    from observations
),

winners as (
    select * from ranked
    where preference = 1
),

final as (
    select
        canonical_user_id,
        {{ pivot_attribute_columns({'age': 'integer', 'country': 'varchar', 'city': 'varchar', 'gender': 'varchar'}) }}
    from winners
    group by canonical_user_id
)

select * from final
