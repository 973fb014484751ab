{#- Every raw landing line, parsed and judged exactly once: staged, quarantined or duplicate.
    Grain: one row per raw line (file_path, line_number). stg_events, quarantined_events and
    stg_duplicate_events are views that split this table by status. -#}
{{ config(materialized='incremental', on_schema_change='fail') }}

{#- the top-level fields every line is read for: each line is parsed once into a struct of these
    fields (parse_json_struct, json_transform on DuckDB); each is named once here and read by name
    (raw_<name>) after that. The consent fields come from the consent_signals var
    (docs/privacy.md, "Consent"). -#}
{#- DuckDB runs the duplicate check's window over the repeated ids' lines only (see ranked);
    the two halves read the chain of checks, whose CTEs must then be computed where they are
    read, not stored ('not materialized': DuckDB stores a CTE read twice, every column of every
    line). Spark: one window over every line (window_over_repeated_ids_only). -#}
{%- set repeats_only = window_over_repeated_ids_only() -%}
{%- set inlined = 'not materialized' if repeats_only else '' -%}
{%- set consent_signals = var('consent_signals') -%}
{%- set top_fields = {
    'message_id': '$.messageId',
    'type': '$.type',
    'event': '$.event',
    'user_id': '$.userId',
    'anonymous_id': '$.anonymousId',
    'previous_id': '$.previousId',
    'timestamp': '$.timestamp',
    'sent_at': '$.sentAt',
    'received_at': '$.receivedAt',
    'name': '$.name',
    'properties': '$.properties',
    'traits': '$.traits',
    'context_traits': '$.context.traits',
    'consent_event': consent_signals.event_path,
    'consent_traits': consent_signals.trait_path,
    'device_type': '$.context.device.type',
    'locale': '$.context.locale',
} -%}
{#- the context's consent object is read per category, as struct fields: no text of the object
    to parse again per category -#}
{%- for category in consent_categories() -%}
    {%- do top_fields.update({'consent_context_' ~ category: json_key_path(category, consent_signals.context_path)}) -%}
{%- endfor -%}
{#- the standard trait locations of Segment / RudderStack SDKs, read from the trait object:
    top-level first, then the spec's address object -#}
{%- set trait_fields = {
    'age': '$.age',
    'birthday': '$.birthday',
    'country': '$.country',
    'address_country': '$.address.country',
    'city': '$.city',
    'address_city': '$.address.city',
    'state': '$.state',
    'address_state': '$.address.state',
    'postal_code': '$.postalCode',
    'address_postal_code': '$.address.postal_code',
    'gender': '$.gender',
    'email': '$.email',
    'name': '$.name',
    'first_name': '$.firstName',
    'last_name': '$.lastName',
} -%}
{#- the order properties the profiles read (Segment e-commerce spec v2) -#}
{%- set order_fields = {
    'order_id': '$.order_id',
    'revenue': '$.revenue',
    'total': '$.total',
    'currency': '$.currency',
} -%}
{%- set plan = tracking_plan() -%}
{%- set rules = plan.trait_rules -%}
{%- set age_rule = rules.get('age', {}) -%}
{%- set min_age = age_rule.get('min', 13) -%}
{%- set max_age = age_rule.get('max', 110) -%}
{%- set genders = rules.get('gender', {}).get('accepted', []) -%}
{%- set event_names = plan.events.keys() | list -%}
{%- set declared_traits = plan.traits -%}
{%- set property_names = plan_property_names() -%}
{#- the text of a property is read only where a rule compares its value (min) -#}
{%- set property_value_fields = {} -%}
{%- for name in plan_min_property_names() -%}
    {%- do property_value_fields.update({name: json_key_path(name)}) -%}
{%- endfor -%}

with

raw_lines as (
    select * from {{ ref('raw_landing_events') }}
    {%- if is_incremental() %}
        -- the lines loaded after this table's latest (a literal: see this_table_literals)
        where loaded_at > coalesce(
                {{ this_table_literals([['max(loaded_at)', 'timestamp']])[0] }},
                cast('1900-01-01' as timestamp)
            )
    {%- endif %}
),

countries as (
    -- every accepted spelling of a country (ISO alpha-2, alpha-3, English and local names,
    -- aliases), upper-cased, with its ISO alpha-2 code
    select
        upper(country_code) as country_key,
        country_code
    from {{ ref('ref_countries') }}
    union
    select
        upper(country_name) as country_key,
        country_code
    from {{ ref('ref_countries') }}
    union
    select
        upper(alias) as country_key,
        country_code
    from {{ ref('ref_country_aliases') }}
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
        -- JSON functions fail on invalid text: only valid lines are parsed further, each once
        case
            when {{ json_is_valid('raw_line') }} and not has_encoding_error
                then {{ parse_json_struct('raw_line', top_fields) }}
        end as top_struct
    from raw_lines
),

top_named as (
    select
        parsed.*,
        {{ struct_fields('top_struct', top_fields, 'raw_') }}
    from parsed
),

fields as (
    select
        file_path,
        line_number,
        loaded_at,
        raw_line,
        has_encoding_error,
        is_valid_json,
        nullif(trim(raw_message_id), '') as message_id,
        lower(raw_type) as event_type,
        raw_event as event_name,
        nullif(trim(raw_user_id), '') as user_id,
        nullif(trim(raw_anonymous_id), '') as anonymous_id,
        nullif(trim(raw_previous_id), '') as previous_id,
        raw_timestamp as event_at_text,
        {{ line_utc_timestamp('raw_timestamp') }} as event_at,
        {{ line_utc_timestamp('raw_sent_at') }} as sent_at,
        raw_received_at as received_at_text,
        {{ line_utc_timestamp('raw_received_at') }} as received_at,
        raw_name as page_name,
        raw_properties as properties,
        -- identify carries traits; a Profile Updated event carries the corrected traits as
        -- properties; any other call may carry them in context.traits (Segment, RudderStack)
        case
            when lower(raw_type) = 'identify' then raw_traits
            when raw_event = 'Profile Updated' then raw_properties
            else raw_context_traits
        end as trait_source,
        {%- for category in consent_categories() %}
            raw_consent_context_{{ category }} as consent_context_{{ category }},
        {%- endfor %}
        case
            when lower(raw_type) = 'track' and raw_event in {{ quoted_literal_list(consent_signals.events) }}
                then raw_consent_event
        end as consent_event_json,
        case when lower(raw_type) = 'identify' then raw_consent_traits end as consent_traits_json,
        raw_device_type as device_type,
        raw_locale as user_locale
    from top_named
),

suppressed_line_identities as (
    -- the lines' identities on the suppression list: each distinct id hashed once, as a join
    {{ suppressed_identities_of('fields', 'suppressed_identities') }}
),

repeated_message_ids as (
    -- the message ids this run's lines carry more than once: only a line with one of them can
    -- repeat another line of the run (a narrow aggregate of the stored fields; read on DuckDB
    -- only, see ranked)
    select message_id
    from fields
    where message_id is not null
    group by message_id
    having count(*) > 1
),

trait_fields as {{ inlined }} (
    -- from here to event_checks, the checks are computed where they are read, never stored
    -- (inlined; see ranked)
    select
        fields.*,
        {%- if repeats_only %}
            repeated_message_ids.message_id is not null as is_repeated_id,
        {%- endif %}
        case
            when trait_source is not null
                then {{ parse_json_struct('trait_source', trait_fields) }}
        end as trait_struct,
        case
            when event_name in ('Order Completed', 'Order Refunded', 'Order Cancelled') and properties is not null
                then {{ parse_json_struct('properties', order_fields) }}
        end as order_struct
    from fields
    {%- if repeats_only %}
    left join repeated_message_ids
        on fields.message_id = repeated_message_ids.message_id
    {%- endif %}
),

trait_named as {{ inlined }} (
    select
        trait_fields.*,
        {{ struct_fields('trait_struct', trait_fields, 'trait_text_') }},
        {{ struct_fields('order_struct', order_fields, 'order_text_') }}
    from trait_fields
),

traits as {{ inlined }} (
    select
        trait_named.*,
        {{ try_cast('trait_text_age', 'integer') }} as declared_age,
        trait_text_age as declared_age_text,
        trait_text_birthday as declared_birthday_text,
        {{ try_cast('trait_text_birthday', 'date') }} as declared_birthday,
        nullif(trim(coalesce(trait_text_country, trait_text_address_country)), '') as declared_country,
        nullif(trim(coalesce(trait_text_city, trait_text_address_city)), '') as declared_city,
        nullif(trim(coalesce(trait_text_state, trait_text_address_state)), '') as declared_state,
        nullif(trim(coalesce(trait_text_postal_code, trait_text_address_postal_code)), '')
            as declared_postal_code,
        lower(trim(trait_text_gender)) as declared_gender,
        trait_text_email as declared_email,
        nullif(trim(coalesce(
            trait_text_name,
            concat_ws(' ', nullif(trim(trait_text_first_name), ''), nullif(trim(trait_text_last_name), ''))
        )), '') as declared_name,
        -- every other key of the trait object: a custom trait, declared in the plan or not
        case
            when trait_source is not null and {{ json_is_object('trait_source') }}
                then {{ json_remove_keys('trait_source', standard_trait_keys()) }}
        end as custom_trait_json
    from trait_named
),

trait_checks as {{ inlined }} (
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
        countries.country_code as resolved_country,
        traits.declared_country is not null and countries.country_code is null as is_invalid_country,
        -- a city in the reference list must lie in the declared (valid) country
        known_cities.city_key is not null
        and countries.country_code is not null
        and city_in_country.city_key is null as is_city_country_mismatch,
        traits.declared_gender is not null
        and traits.declared_gender not in {{ quoted_literal_list(genders) }} as is_invalid_gender
        -- then the traits the plan declares, typed: custom_text_<name>, custom_value_<name>
        -- (generated; the linter cannot indent a line that renders empty)
        -- noqa: disable=LT02
        {{ declared_trait_columns('traits.custom_trait_json', declared_traits) }}
    -- noqa: enable=LT02
    from traits
    left join countries
        on upper(traits.declared_country) = countries.country_key
    left join known_cities
        on lower(traits.declared_city) = known_cities.city_key
    left join cities as city_in_country
        on
            lower(traits.declared_city) = city_in_country.city_key
            and countries.country_code = city_in_country.country_code
),

property_documents as {{ inlined }} (
    -- a track call's properties parsed once for the type of every declared property
    -- (json_document: a VARIANT on Spark, the text itself on DuckDB, whose json_type takes
    -- a list of paths)
    select
        trait_checks.*,
        case
            when event_type = 'track' and properties is not null
                then {{ json_document('properties') }}
        end as properties_document
    from trait_checks
),

property_fields as {{ inlined }} (
    select
        property_documents.*,
        {{ json_type_many('properties_document', plan_property_paths()) }} as property_kinds{{ ',' if property_value_fields }}
        -- then the values of the properties with a minimum, one parse (none without a minimum;
        -- generated: the linter cannot indent a line that renders empty)
        -- noqa: disable=LT02
        {%- if property_value_fields %}
            case
                when event_type = 'track' and properties is not null
                    then {{ parse_json_struct('properties', property_value_fields) }}
            end as property_values
        {%- endif %}
    -- noqa: enable=LT02
    from property_documents
),

property_named as {{ inlined }} (
    -- each property the plan declares as kind_<name> (its JSON type, in the engine's names:
    -- json_native_kinds); the ones with a minimum
    -- as prop_<name> (their text) too
    select
        property_fields.*,
        {{ unpack_fields('property_kinds', property_names, 'kind_') }}{{ ',' if property_value_fields }}
        -- noqa: disable=LT02
        {%- if property_value_fields %}
            {{ struct_fields('property_values', property_value_fields, 'prop_') }}
        {%- endif %}
    -- noqa: enable=LT02
    from property_fields
),

event_checks as {{ inlined }} (
    select
        property_named.*,
        {{ non_null_array([
            "case when has_encoding_error then 'invalid_encoding' end",
            "case when not is_valid_json and not has_encoding_error then 'invalid_json' end",
            "case when is_valid_json and message_id is null then 'missing_message_id' end",
            "case when is_valid_json and user_id is null and anonymous_id is null then 'missing_identity' end",
            "case when is_valid_json and coalesce(event_type, '') not in ('track', 'identify', 'page', 'screen', 'alias', 'group') then 'unknown_type' end",
            "case when is_valid_json and (event_at is null or (received_at_text is not null and received_at is null)) then 'bad_timestamp' end",
            "case when event_at > coalesce(received_at, loaded_at) + interval '" ~ var('future_timestamp_tolerance_minutes') ~ " minutes' then 'future_timestamp' end",
            "case when event_at < " ~ to_utc_timestamp(quoted_literal(var('event_timestamp_min'))) ~ " or event_at >= " ~ to_utc_timestamp(quoted_literal(var('event_timestamp_max'))) ~ " then 'implausible_timestamp' end",
            "case when event_type = 'track' and (event_name is null or event_name not in " ~ quoted_literal_list(event_names) ~ ") then 'unknown_event' end",
            "case when event_type = 'track' and " ~ tracking_plan_violation('missing', 'event_name') ~ " then 'missing_required_property' end",
            "case when event_type = 'track' and " ~ tracking_plan_violation('mistyped', 'event_name') ~ " then 'wrong_property_type' end",
            "case when event_type = 'track' and " ~ tracking_plan_violation('negative', 'event_name') ~ " then 'negative_amount' end",
            "case when event_type = 'track' and " ~ tracking_plan_violation('below_min', 'event_name') ~ " then 'below_minimum' end",
            "case when " ~ is_suppressed('suppressed_line_identities') ~ " then 'suppressed' end",
        ]) }} as reasons
    from property_named
),

already_staged as (
    -- message ids staged by earlier runs: a new copy of one is a duplicate. Only staged events
    -- count: a quarantined event re-sent, corrected, with the same messageId is staged. Only
    -- the ids this run's lines carry are looked up (a distinct over every staged id cost a
    -- micro-batch 2.4 s of CPU at 10M events).
    {%- if is_incremental() %}
        select distinct message_id from {{ this }}
        where
            status = 'staged'
            and message_id in (select fields.message_id from fields)
    {%- else %}
        select cast(null as {{ text_type() }}) as message_id
        where false
    {%- endif %}
),

{#- a line's place in landing order: file, then line number -#}
{%- set landing_position = "event_checks.file_path || chr(0) || lpad(cast(event_checks.line_number as "
    ~ text_type() ~ "), 12, '0')" %}

ranked as (
    -- first received = first in landing order; files land with names that sort by arrival, so a
    -- full refresh and a run per file agree on which copy wins. Only lines that pass every check
    -- compete: a quarantined copy never hides a valid one. On DuckDB the window runs only over
    -- the lines whose id another line of the run carries (2% of a generated day), and a line
    -- whose id no other line carries can repeat only an earlier run's: a window carries every
    -- column of its lines through its partitions (over every line, 45% of the model's CPU at
    -- 1M, 40% of its wall time at 10M). The halves read event_checks with opposite filters on
    -- is_repeated_id; inlined, each computes its own lines' checks (stored, the CTE held every
    -- column of every line: slower at 4M and 10M in session 7). Spark: one window over every
    -- line (window_over_repeated_ids_only).
    select
        event_checks.*,
        event_checks.message_id is not null
        and {{ array_size('event_checks.reasons') }} = 0
        and (
            coalesce(
                {{ landing_position }} != min(case
                    when event_checks.message_id is not null and {{ array_size('event_checks.reasons') }} = 0
                        then {{ landing_position }}
                end) over (partition by event_checks.message_id),
                false
            )
            or already_staged.message_id is not null
        ) as is_duplicate
    from event_checks
    left join already_staged
        on event_checks.message_id = already_staged.message_id
    {%- if repeats_only %}
        where event_checks.is_repeated_id
        union all
        select
            event_checks.*,
            event_checks.message_id is not null
            and {{ array_size('event_checks.reasons') }} = 0
            and already_staged.message_id is not null as is_duplicate
        from event_checks
        left join already_staged
            on event_checks.message_id = already_staged.message_id
        where not event_checks.is_repeated_id
    {%- endif %}
),

{%- set scrub_change_expressions = [] -%}
{%- for field, column in scrubbed_text_fields().items() %}
    {%- do scrub_change_expressions.append(
        "case when " ~ column ~ " is distinct from scrubbed_" ~ column ~ " then '" ~ field ~ "' end") -%}
{%- endfor %}
{%- do scrub_change_expressions.append(
    "case when cast(custom_traits_cleaned as " ~ text_type() ~ ") is distinct from scrubbed_custom_traits then 'custom_traits' end") %}

scrubbed as (
    -- free text (properties: search queries, paths, URLs, referrers, titles; page names; custom
    -- traits) with every e-mail, phone number and IP replaced by a placeholder, before any mart
    -- reads it. A suppressed line (an erased person) keeps nothing but its place and reason.
    select
        ranked.*,
        {{ array_contains('ranked.reasons', "'suppressed'") }} as is_suppressed_line,
        {%- for column in scrubbed_text_fields().values() %}
            {{ scrub_pii('ranked.' ~ column) }} as scrubbed_{{ column }},
        {%- endfor %}
        {{ scrub_pii('cast(ranked.custom_traits_cleaned as ' ~ text_type() ~ ')') }} as scrubbed_custom_traits
    from (
        select
            ranked.*,
            {{ custom_traits_cleaned('ranked.custom_trait_json', declared_traits) }}
                as custom_traits_cleaned
        from ranked
    ) as ranked
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
        -- the raw text is kept only where someone must look at it (staged rows are typed below),
        -- and never for an erased person
        case
            when is_suppressed_line then null
            when is_duplicate or {{ array_size('reasons') }} > 0 then raw_line
        end as raw_line,
        {{ non_null_array(scrub_change_expressions) }} as scrubbed_fields,
        message_id,
        event_type,
        event_name,
        case when not is_suppressed_line then user_id end as user_id,
        case when not is_suppressed_line then anonymous_id end as anonymous_id,
        case when not is_suppressed_line then previous_id end as previous_id,
        event_at,
        sent_at,
        received_at,
        {{ dbt.datediff('event_at', 'received_at', 'second') }} as arrival_delay_seconds,
        case when not is_suppressed_line then scrubbed_page_name end as page_name,
        case when not is_suppressed_line then scrubbed_properties end as properties,
        {#- trait values that break a rule are nulled, and the rule is named in trait_issues -#}
        
        case
            when is_implausible_age then null
            when declared_age_text is not null then declared_age
            when declared_birthday is not null
                then {{ age_in_years('declared_birthday', 'event_at') }}
        end as trait_age,
        -- a city that lies in another country: either could be wrong, so neither is kept
        case
            when not is_invalid_country and not is_city_country_mismatch then resolved_country
        end as trait_country,
        case when not is_city_country_mismatch then scrubbed_declared_city end as trait_city,
        scrubbed_declared_state as trait_state,
        scrubbed_declared_postal_code as trait_postal_code,
        case when not is_invalid_gender then declared_gender end as trait_gender,
        {{ pseudonymise('declared_email') }} as email_hash,
        {{ pseudonymise('declared_name') }} as name_hash,
        -- custom traits: declared ones valid (pii ones as a keyed hash), undeclared ones as sent
        case when not is_suppressed_line then {{ as_json('scrubbed_custom_traits') }} end
            as custom_traits,
        {{ non_null_array([
            "case when is_implausible_age then 'implausible_age' end",
            "case when is_invalid_country then 'invalid_country' end",
            "case when is_city_country_mismatch then 'city_country_mismatch' end",
            "case when is_invalid_gender then 'invalid_gender' end",
        ] + declared_trait_issue_expressions(declared_traits)) }} as trait_issues,
        {{ declared_trait_rejections(declared_traits) }} as declared_trait_rejections,
        case when is_implausible_age then coalesce(declared_age_text, declared_birthday_text) end
            as rejected_age,
        case when is_invalid_country then declared_country end as rejected_country,
        case when is_city_country_mismatch then scrubbed_declared_city || ', ' || declared_country end
            as rejected_city,
        case when is_invalid_gender then declared_gender end as rejected_gender,
        order_text_order_id as order_id,
        {{ try_cast('coalesce(order_text_revenue, order_text_total)', 'decimal(18, 2)') }} as order_amount,
        upper(trim(order_text_currency)) as order_currency,
        {%- for category in consent_categories() %}
            {{ consent_signal(category) }} as consent_{{ category }},
        {%- endfor %}
        device_type,
        user_locale
    from scrubbed
)

select * from final
