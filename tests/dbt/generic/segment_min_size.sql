{#- Over-segmentation guard: one row for every segment whose size is below its min_size.
    Attach it to dim_segments with severity warn. -#}
{% test segment_min_size(model) %}

select
    segment_name,
    size,
    min_size
from {{ model }}
where min_size is not null
    and size < min_size

{% endtest %}
