{#- Every profile (dim_user_profiles) and every user of int_user_behaviour_vectors is in
    fct_user_clusters exactly once per method - clustered, or explicitly 'insufficient_data'
    (unique_combination_of_columns covers "at most once"; this covers "at least once"). -#}

with

vectors as (
    select canonical_user_id from {{ ref('int_user_behaviour_vectors') }}
    union
    select canonical_user_id from {{ ref('dim_user_profiles') }}
),

methods as (
    select distinct method from {{ ref('fct_user_clusters') }}
),

expected_methods as (
    select 'kmeans' as expected_method
    union all
    select 'hierarchical' as expected_method
),

assignments as (
    select
        canonical_user_id,
        method
    from {{ ref('fct_user_clusters') }}
),

missing_methods as (
    select
        cast(null as {{ text_type() }}) as canonical_user_id,
        expected_methods.expected_method
    from expected_methods
    left join methods
        on expected_methods.expected_method = methods.method
    where methods.method is null
),

missing_users as (
    select
        vectors.canonical_user_id,
        methods.method
    from vectors
    cross join methods
    left join assignments
        on
            vectors.canonical_user_id = assignments.canonical_user_id
            and methods.method = assignments.method
    where assignments.canonical_user_id is null
),

final as (
    select * from missing_users
    union all
    select * from missing_methods
)

select * from final
