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
        {%- for attribute in ['age', 'country', 'city', 'gender'] %}
        {%- set cast_to = 'integer' if attribute == 'age' else 'varchar' %}
        cast(max(case when attribute_name = '{{ attribute }}' then attribute_value end) as {{ cast_to }})
            as {{ attribute }},
        max(case when attribute_name = '{{ attribute }}' then source end) as {{ attribute }}_source,
        max(case when attribute_name = '{{ attribute }}' then observed_at end)
            as {{ attribute }}_observed_at{{ ',' if not loop.last }}
        {%- endfor %}
    from winners
    group by canonical_user_id
)

select * from final
