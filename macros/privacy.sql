{#- Whether a line belongs to an erased identity: its userId, anonymousId or previousId is one
    of the identities in the CTE `relation` (column `identity`: the lines' identities found on the
    suppression list, see suppressed_identities_of). -#}
{% macro is_suppressed(relation, id_columns=['user_id', 'anonymous_id', 'previous_id']) -%}
    (
        {%- for column in id_columns %}
            {{ column }} in (select identity from {{ relation }})
            {%- if not loop.last %} or{% endif %}
        {%- endfor %}
    )
{%- endmacro %}


{#- The identities named in `id_columns` of the rows of CTE `lines` that are on the suppression
    list (CTE `suppressed`, privacy_suppression_list: keyed pseudonyms 'suppressed:' || id), as
    one column `identity`: each distinct identity hashed once (not each line's ids, three hashes
    a line), and none hashed while the list is empty. A select, for a CTE read by is_suppressed. -#}
{% macro suppressed_identities_of(lines, suppressed, id_columns=['user_id', 'anonymous_id', 'previous_id']) -%}
    select named.identity
    from (
        select distinct identity
        from (
            select {{ unnest_array(non_null_array(id_columns)) }} as identity
            from {{ lines }}
            where exists (select 1 from {{ suppressed }})
        ) as line_ids
    ) as named
    inner join {{ suppressed }}
        on {{ pseudonymise("'suppressed:' || named.identity") }} = {{ suppressed }}.identity_hash
{%- endmacro %}


{#- The marts' user key of a raw userId / anonymousId: a keyed HMAC (personalization.privacy
    .user_pseudonym, registered on DuckDB by personalization.duckdb_plugin). Called once per
    distinct identity, in restricted_identity_keys; every other model joins that table. -#}
{% macro user_pseudonym(expr) -%}
    {{ return(adapter.dispatch('user_pseudonym', 'personalization')(expr)) }}
{%- endmacro %}

{% macro default__user_pseudonym(expr) -%}
    user_pseudonym({{ expr }})
{%- endmacro %}


{#- Free text with every e-mail, phone number and IP (percent-encoded too) replaced by a
    placeholder; other text unchanged. The SQL is generated from the PII guard's patterns
    (personalization.pii_guard.scrub_expression) and registered on DuckDB by
    personalization.duckdb_plugin as a per-connection macro: call it in tables only. -#}
{% macro scrub_pii(expr) -%}
    {{ return(adapter.dispatch('scrub_pii', 'personalization')(expr)) }}
{%- endmacro %}

{% macro default__scrub_pii(expr) -%}
    scrub_pii({{ expr }})
{%- endmacro %}


{#- The free-text columns of a judged line scrubbed by scrub_pii at staging, as
    {field name in rpt_data_quality: column}, besides the custom traits: properties carry search
    queries, paths, URLs with query strings, referrers and titles; page_name is the page call's
    name; city, state and postal code are free-text traits. -#}
{% macro scrubbed_text_fields() -%}
    {{ return({
        'page_name': 'page_name',
        'properties': 'properties',
        'city': 'declared_city',
        'state': 'declared_state',
        'postal_code': 'declared_postal_code',
    }) }}
{%- endmacro %}


{#- The consent categories every line is read for (int_user_consent, dim_user_profiles). -#}
{% macro consent_categories() -%}
    {{ return(['personalization', 'advertising', 'analytics']) }}
{%- endmacro %}


{#- One consent category of a judged line, from the places the consent_signals var names, the
    most explicit first: a consent event's payload (consent_event_json), identify traits
    (consent_traits_json), then context.consent.categoryPreferences (its category's text, read
    by staging's one parse of the line: consent_context_<category>). Null when the line says
    nothing about it. -#}
{% macro consent_signal(category) -%}
    coalesce(
        {{ try_cast(json_text('consent_event_json', '$.' ~ category), 'boolean') }},
        {{ try_cast(json_text('consent_traits_json', '$.' ~ category), 'boolean') }},
        {{ try_cast('consent_context_' ~ category, 'boolean') }}
    )
{%- endmacro %}
