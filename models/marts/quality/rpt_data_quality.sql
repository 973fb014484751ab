{#- One table of data-quality figures, long format for BI: quarantine rows by reason, trait values
    nulled, duplicate rate, imputation rate and accuracy, staleness, volume anomalies.
    Grain: one row per (metric_group, metric_name, dimension). -#}

with

checked as (
    select * from {{ ref('stg_landing__events_checked') }}
),

quarantined as (
    select * from {{ ref('quarantined_events') }}
),

quarantined_traits as (
    select * from {{ ref('quarantined_traits') }}
),

profiles as (
    select * from {{ ref('dim_user_profiles') }}
),

knn_ages as (
    select * from {{ ref('int_user_age_knn') }}
),

imputation_features as (
    select * from {{ ref('int_user_imputation_features') }}
),

freshness as (
    select * from {{ ref('fct_user_attribute_freshness') }}
),

volume as (
    select * from {{ ref('rpt_event_volume_daily') }}
),

-- issue 11: custom traits nobody declared, and orders in a currency without a rate
staged_events as (
    select * from {{ ref('stg_events') }}
),

currency_rates as (
    select * from {{ ref('ref_currency_rates') }}
),

undeclared_traits as (
    select
        'trait_quarantine' as metric_group,
        'undeclared_trait_events' as metric_name,
        trait_name as dimension,
        cast(count(*) as double) as metric_value
    from (
        select {{ unnest_array(json_object_keys('custom_traits')) }} as trait_name
        from staged_events
        where custom_traits is not null
    ) as custom_trait_names
    where trait_name not in {{ quoted_literal_list(tracking_plan().traits.keys() | list) }}
    group by trait_name
),

order_currencies as (
    select
        staged_events.message_id,
        coalesce(staged_events.order_currency, {{ quoted_literal(var('default_currency')) }})
            as currency
    from staged_events
    where
        staged_events.event_name = 'Order Completed'
        and staged_events.event_at <= {{ as_of() }}
),

unconverted_orders as (
    select
        'ingestion' as metric_group,
        'orders_without_rate' as metric_name,
        order_currencies.currency as dimension,
        cast(count(*) as double) as metric_value
    from order_currencies
    left join currency_rates
        on order_currencies.currency = currency_rates.currency_code
    where currency_rates.currency_code is null
    group by order_currencies.currency
),

landing_files as (
    select * from {{ ref('raw_landing_files') }}
),

landing_file_log as (
    select * from {{ source('raw_load', 'landing_file_log') }}
),

quarantine_reasons as (
    select
        'quarantine' as metric_group,
        'rows' as metric_name,
        reason as dimension,
        cast(count(*) as double) as metric_value
    from (select {{ unnest_array('reasons') }} as reason from quarantined) as reasons
    group by reason
),

trait_reasons as (
    select
        'trait_quarantine' as metric_group,
        'values_nulled' as metric_name,
        reason as dimension,
        cast(count(*) as double) as metric_value
    from quarantined_traits
    group by reason
),

line_counts as (
    select
        cast(count(*) as double) as raw_lines,
        cast(count(case when status = 'staged' then 1 end) as double) as staged_events,
        cast(count(case when status = 'quarantined' then 1 end) as double) as quarantined_lines,
        cast(count(case when status = 'duplicate' then 1 end) as double) as duplicate_lines,
        count(case when status = 'duplicate' then 1 end) / nullif(count(*), 0) as duplicate_rate,
        count(case when status = 'quarantined' then 1 end) / nullif(count(*), 0) as quarantine_rate
    from checked
),

line_totals as (
    select
        'ingestion' as metric_group,
        metric_name,
        'all' as dimension,
        metric_value
    from line_counts unpivot (metric_value for metric_name in (
        raw_lines, staged_events, quarantined_lines, duplicate_lines, duplicate_rate,
        quarantine_rate
    ))
),

known_ages as (
    -- accuracy on users whose age is known: kNN predictions are out-of-fold; the group median
    -- (by favourite category) and the global median are the baselines it has to beat
    select
        imputation_features.canonical_user_id,
        imputation_features.known_age,
        knn_ages.oof_knn_age as knn_age,
        profiles.favourite_category
    from imputation_features
    inner join knn_ages
        on imputation_features.canonical_user_id = knn_ages.canonical_user_id
    left join profiles
        on imputation_features.canonical_user_id = profiles.canonical_user_id
    where imputation_features.known_age is not null
),

group_medians as (
    select
        favourite_category,
        {{ median('known_age') }} as group_median_age
    from known_ages
    group by favourite_category
),

global_median as (
    select {{ median('known_age') }} as global_median_age
    from known_ages
),

errors as (
    select
        avg(abs(known_ages.knn_age - known_ages.known_age)) as knn_mae_years,
        avg(abs(group_medians.group_median_age - known_ages.known_age)) as group_median_mae_years,
        avg(abs(global_median.global_median_age - known_ages.known_age))
            as global_median_mae_years,
        cast(count(*) as double) as users_with_known_age
    from known_ages
    cross join global_median
    left join group_medians
        on known_ages.favourite_category is not distinct from group_medians.favourite_category
),

accuracy as (
    select
        'imputation' as metric_group,
        metric_name,
        'age' as dimension,
        metric_value
    from errors unpivot (metric_value for metric_name in (
        knn_mae_years, group_median_mae_years, global_median_mae_years, users_with_known_age
    ))
),

oof_errors as (
    -- the out-of-fold error of every candidate method (int_user_age_knn, same folds for all)
    -- and the method chosen there: null when none beats the global median by var
    -- imputation_margin, and then no age is imputed
    select
        avg(abs(knn_ages.oof_knn_age - imputation_features.known_age)) as knn,
        avg(abs(knn_ages.oof_group_median_age - imputation_features.known_age)) as group_median,
        avg(abs(knn_ages.oof_global_median_age - imputation_features.known_age)) as global_median,
        max(cast(knn_ages.imputation_method as {{ dbt.type_string() }})) as chosen_method
    from knn_ages
    inner join imputation_features
        on knn_ages.canonical_user_id = imputation_features.canonical_user_id
    where imputation_features.known_age is not null
),

imputation_choice as (
    select
        'imputation' as metric_group,
        'age_oof_mae_years' as metric_name,
        method as dimension,
        metric_value
    from oof_errors unpivot (metric_value for method in (knn, group_median, global_median))
    union all
    select
        'imputation' as metric_group,
        'age_winner_oof_mae_years' as metric_name,
        coalesce(chosen_method, 'none') as dimension,
        case chosen_method
            when 'knn' then knn
            when 'group_median' then group_median
            else global_median
        end as metric_value
    from oof_errors
),

imputation_rates as (
    select
        'imputation' as metric_group,
        'imputed_share' as metric_name,
        coalesce(age_imputation_method, 'observed') as dimension,
        count(*) / sum(count(*)) over () as metric_value
    from profiles
    group by coalesce(age_imputation_method, 'observed')
),

attribute_shares as (
    select
        attribute_name,
        {{ share_where('is_missing') }} as missing_share,
        {{ share_where('is_stale') }} as stale_share
    from freshness
    where is_identified
    group by attribute_name
),

staleness as (
    select
        'freshness' as metric_group,
        metric_name,
        attribute_name as dimension,
        metric_value
    from attribute_shares unpivot (metric_value for metric_name in (missing_share, stale_share))
),

volume_anomalies as (
    select
        'volume' as metric_group,
        'anomalous_days' as metric_name,
        'all' as dimension,
        cast(count(case when is_anomaly then 1 end) as double) as metric_value
    from volume
),

landing_statuses as (
    -- every landing file by its latest outcome, and every file that is not JSON lines
    select
        load_status as status,
        file_path
    from landing_files
    union
    select
        status,
        file_path
    from landing_file_log
    where status = 'unsupported'
),

landing_outcomes as (
    select
        'landing' as metric_group,
        'files' as metric_name,
        status as dimension,
        cast(count(*) as double) as metric_value
    from landing_statuses
    group by status
),

consent as (
    select * from {{ ref('int_user_consent') }}
),

consent_lines as (
    -- issue 13: judged lines carrying a consent signal, by status (quarantined ones count too)
    select
        'privacy' as metric_group,
        'consent_signal_lines' as metric_name,
        status as dimension,
        cast(count(*) as double) as metric_value
    from checked
    where
        status != 'duplicate'
        and (
            {%- for category in consent_categories() %}
                consent_{{ category }} is not null{% if not loop.last %} or{% endif %}
            {%- endfor %}
        )
    group by status
),

consent_user_counts as (
    -- users on consent_default (no signal), and users the analytics policy leaves unprofiled
    select
        cast(count(*) filter (where not has_consent_signal) as double)
            as users_without_consent_signal,
        cast(count(*) filter (where not is_profiling_allowed) as double)
            as users_not_profiled_by_policy
    from consent
),

consent_users as (
    select
        'privacy' as metric_group,
        metric_name,
        'all' as dimension,
        metric_value
    from consent_user_counts unpivot (metric_value for metric_name in (
        users_without_consent_signal, users_not_profiled_by_policy
    ))
),

scrubbed_fields as (
    -- issue 13: e-mails, phone numbers and IPs scrubbed from free text at staging, per field
    -- (every scrubbed field listed, zero included)
    select {{ unnest_array(string_array(scrubbed_text_fields().keys() | list + ['custom_traits'])) }}
        as field_name
),

scrub_counts as (
    select
        'privacy' as metric_group,
        'values_scrubbed' as metric_name,
        scrubbed_fields.field_name as dimension,
        cast(count(scrubbed.field_name) as double) as metric_value
    from scrubbed_fields
    left join (select {{ unnest_array('scrubbed_fields') }} as field_name from checked) as scrubbed
        on scrubbed_fields.field_name = scrubbed.field_name
    group by scrubbed_fields.field_name
),

unioned as (
    select * from quarantine_reasons
    union all
    select * from trait_reasons
    union all
    select * from line_totals
    union all
    select * from accuracy
    union all
    select * from imputation_choice
    union all
    select * from imputation_rates
    union all
    select * from staleness
    union all
    select * from volume_anomalies
    union all
    select * from undeclared_traits
    union all
    select * from unconverted_orders
    union all
    select * from landing_outcomes
    union all
    select * from scrub_counts
    union all
    select * from consent_lines
    union all
    select * from consent_users
),

final as (
    select
        metric_group,
        metric_name,
        dimension,
        metric_value,
        {{ as_of() }} as computed_at
    from unioned
)

select * from final
