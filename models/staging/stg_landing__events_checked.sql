{#- Every raw landing line, parsed and judged exactly once: staged, quarantined or duplicate.
    Grain: one row per raw line (file_path, line_number). stg_events, quarantined_events and
    stg_duplicate_events are views that split this table by status. -#}
{{ config(materialized='incremental', on_schema_change='fail') }}

{#- the top-level fields every line is read for, extracted with one parse per line -#}
{%- set top_paths = [
    '$.messageId', '$.type', '$.event', '$.userId', '$.anonymousId', '$.previousId',
    '$.timestamp', '$.sentAt', '$.receivedAt', '$.name', '$.properties', '$.traits',
    '$.context.consent.categoryPreferences', '$.context.device.type', '$.context.locale',
] -%}
{%- set trait_paths = ['$.age', '$.birthday', '$.country', '$.city', '$.gender', '$.email'] -%}
{%- set rules = tracking_plan().trait_rules -%}
{%- set age_rule = rules.get('age', {}) -%}
{%- set min_age = age_rule.get('min', 13) -%}
{%- set max_age = age_rule.get('max', 110) -%}
{%- set genders = rules.get('gender', {}).get('accepted', []) -%}
{%- set event_names = tracking_plan().events.keys() | list -%}

with

raw_lines as (
    select * from {{ ref('raw_landing_events') }}
    {%- if is_incremental() %}
        where loaded_at > (
                select coalesce(max(loaded_at), cast('1900-01-01' as timestamp)) from {{ this }}
            )
    {%- endif %}
),

countries as (
    select country_code from {{ ref('ref_countries') }}
),

suppressed_identities as (
    select identity_hash from {{ ref('privacy_suppression_list') }}
),

cities as (
    select
        lower(city) as city_key,
        country_code
    from {{ ref('ref_cities') }}
),

known_cities as (
    select distinct city_key from cities
),

parsed as (
    select
        file_path,
        line_number,
        loaded_at,
        raw_line,
        has_encoding_error,
        {{ json_is_valid('raw_line') }} and not has_encoding_error as is_valid_json,
        -- JSON functions fail on invalid text: only valid lines are parsed further
        case
            when {{ json_is_valid('raw_line') }} and not has_encoding_error
                then {{ json_text_many('raw_line', top_paths) }}
        end as top_fields
    from raw_lines
),

fields as (
    select
        file_path,
        line_number,
        loaded_at,
        raw_line,
        has_encoding_error,
        is_valid_json,
        nullif(trim({{ array_item('top_fields', 1) }}), '') as message_id,
        lower({{ array_item('top_fields', 2) }}) as event_type,
        {{ array_item('top_fields', 3) }} as event_name,
        nullif(trim({{ array_item('top_fields', 4) }}), '') as user_id,
        nullif(trim({{ array_item('top_fields', 5) }}), '') as anonymous_id,
        nullif(trim({{ array_item('top_fields', 6) }}), '') as previous_id,
        {{ to_utc_timestamp(array_item('top_fields', 7)) }} as event_at,
        {{ to_utc_timestamp(array_item('top_fields', 8)) }} as sent_at,
        {{ array_item('top_fields', 9) }} as received_at_text,
        {{ to_utc_timestamp(array_item('top_fields', 9)) }} as received_at,
        {{ array_item('top_fields', 10) }} as page_name,
        {{ array_item('top_fields', 11) }} as properties,
        -- identify carries traits; a Profile Updated event carries the corrected traits as properties
        case
            when lower({{ array_item('top_fields', 2) }}) = 'identify'
                then {{ array_item('top_fields', 12) }}
            when {{ array_item('top_fields', 3) }} = 'Profile Updated'
                then {{ array_item('top_fields', 11) }}
        end as trait_source,
        {{ array_item('top_fields', 13) }} as consent_json,
        {{ array_item('top_fields', 14) }} as device_type,
        {{ array_item('top_fields', 15) }} as user_locale
    from parsed
),

trait_fields as (
    select
        fields.*,
        case
            when trait_source is not null then {{ json_text_many('trait_source', trait_paths) }}
        end as trait_values
    from fields
),

traits as (
    select
        trait_fields.*,
        {{ try_cast(array_item('trait_values', 1), 'integer') }} as declared_age,
        {{ array_item('trait_values', 1) }} as declared_age_text,
        {{ array_item('trait_values', 2) }} as declared_birthday_text,
        {{ try_cast(array_item('trait_values', 2), 'date') }} as declared_birthday,
        upper(trim({{ array_item('trait_values', 3) }})) as declared_country,
        trim({{ array_item('trait_values', 4) }}) as declared_city,
        lower(trim({{ array_item('trait_values', 5) }})) as declared_gender,
        {{ array_item('trait_values', 6) }} as declared_email
    from trait_fields
),

trait_checks as (
    select
        traits.*,
        case
            when traits.declared_age_text is not null
                then traits.declared_age is null
                    or traits.declared_age not between {{ min_age }} and {{ max_age }}
            when traits.declared_birthday_text is not null
                then traits.declared_birthday is null
                    or {{ age_in_years('traits.declared_birthday', 'traits.event_at') }}
                    not between {{ min_age }} and {{ max_age }}
            else false
        end as is_implausible_age,
        traits.declared_country is not null and countries.country_code is null as is_invalid_country,
        -- a city in the reference list must lie in the declared (valid) country
        known_cities.city_key is not null
        and countries.country_code is not null
        and city_in_country.city_key is null as is_city_country_mismatch,
        traits.declared_gender is not null
        and traits.declared_gender not in ('{{ genders | join("', '") }}') as is_invalid_gender
    from traits
    left join countries
        on traits.declared_country = countries.country_code
    left join known_cities
        on lower(traits.declared_city) = known_cities.city_key
    left join cities as city_in_country
        on
            lower(traits.declared_city) = city_in_country.city_key
            and traits.declared_country = city_in_country.country_code
),

property_fields as (
    select
        trait_checks.*,
        {%- set property_paths = plan_property_paths() %}
        case
            when event_type = 'track' and properties is not null
                then {{ json_kind_many('properties', property_paths) }}
        end as property_kinds,
        case
            when event_type = 'track' and properties is not null
                then {{ json_text_many('properties', property_paths) }}
        end as property_texts
    from trait_checks
),

event_checks as (
    select
        property_fields.*,
        {{ non_null_array([
            "case when has_encoding_error then 'invalid_encoding' end",
            "case when not is_valid_json and not has_encoding_error then 'invalid_json' end",
            "case when is_valid_json and message_id is null then 'missing_message_id' end",
            "case when is_valid_json and user_id is null and anonymous_id is null then 'missing_identity' end",
            "case when is_valid_json and coalesce(event_type, '') not in ('track', 'identify', 'page', 'screen', 'alias', 'group') then 'unknown_type' end",
            "case when is_valid_json and (event_at is null or (received_at_text is not null and received_at is null)) then 'bad_timestamp' end",
            "case when event_at > coalesce(received_at, loaded_at) + interval '" ~ var('future_timestamp_tolerance_minutes') ~ " minutes' then 'future_timestamp' end",
            "case when event_type = 'track' and (event_name is null or event_name not in ('" ~ event_names | map('replace', "'", "''") | join("', '") ~ "')) then 'unknown_event' end",
            "case when event_type = 'track' and " ~ tracking_plan_violation('missing', 'event_name', 'property_kinds', 'property_texts') ~ " then 'missing_required_property' end",
            "case when event_type = 'track' and " ~ tracking_plan_violation('mistyped', 'event_name', 'property_kinds', 'property_texts') ~ " then 'wrong_property_type' end",
            "case when event_type = 'track' and " ~ tracking_plan_violation('negative', 'event_name', 'property_kinds', 'property_texts') ~ " then 'negative_amount' end",
            "case when event_type = 'track' and " ~ tracking_plan_violation('below_min', 'event_name', 'property_kinds', 'property_texts') ~ " then 'below_minimum' end",
            "case when " ~ is_suppressed('suppressed_identities') ~ " then 'suppressed' end",
        ]) }} as reasons
    from property_fields
),

already_seen as (
    -- message ids judged by earlier runs: a new copy of one is a duplicate
    {%- if is_incremental() %}
        select distinct message_id from {{ this }}
        where message_id is not null
    {%- else %}
        select cast(null as varchar) as message_id
        where false
    {%- endif %}
),

first_copies as (
    -- first received = first in landing order; files land with names that sort by arrival, so a
    -- full refresh and a run per file agree on which copy wins. Ranked on a narrow projection:
    -- sorting whole rows is the most expensive step of this model.
    select
        message_id,
        min(file_path || chr(0) || lpad(cast(line_number as varchar), 12, '0')) as first_position
    from event_checks
    where message_id is not null
    group by message_id
),

ranked as (
    select
        event_checks.*,
        event_checks.message_id is not null and (
            event_checks.file_path || chr(0) || lpad(cast(event_checks.line_number as varchar), 12, '0')
            != first_copies.first_position
            or already_seen.message_id is not null
        ) as is_duplicate
    from event_checks
    left join first_copies
        on event_checks.message_id = first_copies.message_id
    left join already_seen
        on event_checks.message_id = already_seen.message_id
),

final as (
    select
        file_path,
        line_number,
        loaded_at,
        case
            when is_duplicate then 'duplicate'
            when {{ array_size('reasons') }} > 0 then 'quarantined'
            else 'staged'
        end as status,
        reasons,
        -- the raw text is kept only where someone must look at it; staged rows are typed below
        case when is_duplicate or {{ array_size('reasons') }} > 0 then raw_line end as raw_line,
        message_id,
        event_type,
        event_name,
        user_id,
        anonymous_id,
        previous_id,
        event_at,
        sent_at,
        received_at,
        {{ dbt.datediff('event_at', 'received_at', 'second') }} as arrival_delay_seconds,
        page_name,
        properties,
        {#- trait values that break a rule are nulled, and the rule is named in trait_issues -#}
        
        case
            when is_implausible_age then null
            when declared_age_text is not null then declared_age
            when declared_birthday is not null
                then {{ age_in_years('declared_birthday', 'event_at') }}
        end as trait_age,
        -- a city that lies in another country: either could be wrong, so neither is kept
        case
            when not is_invalid_country and not is_city_country_mismatch then declared_country
        end as trait_country,
        case when not is_city_country_mismatch then declared_city end as trait_city,
        case when not is_invalid_gender then declared_gender end as trait_gender,
        {{ pseudonymise('declared_email') }} as email_hash,
        {{ non_null_array([
            "case when is_implausible_age then 'implausible_age' end",
            "case when is_invalid_country then 'invalid_country' end",
            "case when is_city_country_mismatch then 'city_country_mismatch' end",
            "case when is_invalid_gender then 'invalid_gender' end",
        ]) }} as trait_issues,
        case when is_implausible_age then coalesce(declared_age_text, declared_birthday_text) end
            as rejected_age,
        case when is_invalid_country then declared_country end as rejected_country,
        case when is_city_country_mismatch then declared_city || ', ' || declared_country end
            as rejected_city,
        case when is_invalid_gender then declared_gender end as rejected_gender,
        {{ try_cast(json_text('consent_json', '$.personalization'), 'boolean') }}
            as consent_personalization,
        {{ try_cast(json_text('consent_json', '$.advertising'), 'boolean') }} as consent_advertising,
        {{ try_cast(json_text('consent_json', '$.analytics'), 'boolean') }} as consent_analytics,
        device_type,
        user_locale
    from ranked
)

select * from final
