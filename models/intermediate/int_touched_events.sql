{#- The stitched events of the users this run recomputes (int_events_stitched's columns and
    stitching, stitch_events_ctes), built once per run: on an incremental run the touched-user
    models read it (touched_events()) instead of each stitching every event of the history and
    then filtering. The events are first narrowed by their raw identities
    (int_touched_identities), then stitched, then kept for the touched users only.
    Empty when the run recomputes every user (a full build, a definitions change...) and on an
    engine whose touched-user models are plain tables (Spark: incremental_or_table()): the models
    then read int_events_stitched itself (touched_run_is_full(): the same rows decide both), so a
    full build writes no copy of the history. Grain: one row per message_id. -#}
{%- set every_user = touched_run_is_full() or incremental_or_table() != 'incremental' %}
-- depends_on: {{ ref('int_touched_identities') }}

with

events as (
    {%- if every_user %}
        select * from {{ ref('stg_events') }}
        where false
    {%- else %}
        {{ touched_lines(ref('stg_events'), by_column=true, every_user=false) }}
    {%- endif %}
),

identity_map as (
    select * from {{ ref('int_identity_map') }}
),

identity_keys as (
    select * from {{ ref('restricted_identity_keys') }}
),

consent as (
    select * from {{ ref('int_user_consent') }}
),

touched as (
    select * from {{ ref('int_touched_users') }}
),

{{ stitch_events_ctes('events') }},

final as (
    select stitched.*
    from stitched
    inner join touched
        on stitched.canonical_user_id = touched.canonical_user_id
)

select * from final
