{#- The winning observation per user and attribute: the best source (user_feedback > declared >
    inferred), then the latest. Imputation fills gaps later, in dim_user_profiles. Custom traits
    declared in the tracking plan are columns too, typed as declared.
    Touched-user incremental (macros/touched_users.sql): a run deletes and recomputes the rows of
    the users in int_touched_users (whose observations are the only ones that changed).
    Grain: one row per canonical_user_id. -#}
{%- set attributes = {'age': 'integer', 'country': 'varchar', 'city': 'varchar', 'state': 'varchar',
                      'postal_code': 'varchar', 'gender': 'varchar'} -%}
{%- for name, rule in tracking_plan().traits.items() -%}
    {%- do attributes.update({name: declared_trait_type(name, rule)}) -%}
{%- endfor %}
{{ config(materialized=touched_users_or_table()) }}
-- depends_on: {{ ref('int_touched_users') }}

with

observations as (
    select * from {{ ref('int_user_attribute_observations') }}
    where {{ touched_users_only('canonical_user_id') }}
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
