{#- Bias audit: one row per cell of rpt_segment_composition_audit with a four-fifths flag.
    Warns by default; --vars '{segment_bias_severity: error}' makes a flag fail the build. -#}
{% test segment_bias_flags(model) %}
{{ config(severity=var('segment_bias_severity', 'warn')) }}

select
    group_type,
    group_name,
    attribute_name,
    attribute_value,
    representation_ratio
from {{ model }}
where is_four_fifths_flag

{% endtest %}
