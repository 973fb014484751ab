{#- The winning observation per user and attribute: the best source (user_feedback > declared >
    inferred), then the latest. Imputation fills gaps later, in dim_user_profiles. Custom traits
    declared in the tracking plan are columns too, typed as declared.
    Grain: one row per canonical_user_id. -#}
{%- set attributes = {'age': 'integer', 'country': 'varchar', 'city': 'varchar', 'state': 'varchar',
                      'postal_code': 'varchar', 'gender': 'varchar'} -%}
{%- for name, rule in tracking_plan().traits.items() -%}
    {%- do attributes.update({name: declared_trait_type(name, rule)}) -%}
{%- endfor -%}

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
        {{ pivot_attribute_columns(attributes) }}
    from winners
    group by canonical_user_id
)

select * from final
