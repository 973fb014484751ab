{#- Whether a line belongs to an erased identity: its userId, anonymousId or previousId is on the
    suppression list (privacy_suppression_list, keyed pseudonyms 'suppressed:' || id). The list
    is read from the CTE `relation`; an empty list costs no hashing. -#}
{% macro is_suppressed(relation, id_columns=['user_id', 'anonymous_id', 'previous_id']) -%}
    (
        exists (select 1 from {{ relation }})
        and (
            {%- for column in id_columns %}
                {{ pseudonymise("'suppressed:' || " ~ column) }} in (select identity_hash from {{ relation }})
                {%- if not loop.last %} or{% endif %}
            {%- endfor %}
        )
    )
{%- endmacro %}
