{#- Warns when the build found no consent signal at all (while it has users): the consent paths
    of the consent_signals var may not match the data, and every user gets consent_default
    (docs/privacy.md, "Consent"). -#}
{{ config(severity='warn') }}

with

consent as (
    select * from {{ ref('int_user_consent') }}
),

final as (
    select count(*) as users_without_signal
    from consent
    having count(*) > 0 and not bool_or(has_consent_signal)
)

select * from final
