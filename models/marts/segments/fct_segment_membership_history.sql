{#- Membership spells kept across builds. Each build compares the current members with the open
    spells: new members open a spell (valid_from = as_of), users no longer members close theirs
    (valid_to = as_of). Nothing changes -> nothing is written. as_of must not move backwards.
    A second build at the same as_of corrects the first rather than adding to it: a spell that
    opened at this as_of and no longer holds is removed (no zero-length spell), and a spell that
    closed at this as_of and holds again is reopened (no spell split in two at one instant).
    Grain: one row per (segment_name, canonical_user_id, valid_from). -#}
{{ config(
    materialized=incremental_or_table(),
    incremental_strategy='delete+insert',
    unique_key=['segment_name', 'canonical_user_id', 'valid_from'],
    on_schema_change='fail',
    post_hook=("delete from {{ this }} where valid_to = valid_from" if incremental_or_table() == 'incremental' else []),
) }}

with

current_members as (
    select
        segment_name,
        canonical_user_id
    from {{ ref('fct_segment_membership') }}
    where status = 'member'
),

kept_spells as (
    {%- if is_incremental() %}
        select
            segment_name,
            canonical_user_id,
            valid_from,
            valid_to
        from {{ this }}
        where valid_to is null or valid_to = {{ as_of() }}
    {%- else %}
        select
            cast(null as {{ dbt.type_string() }}) as segment_name,
            cast(null as {{ dbt.type_string() }}) as canonical_user_id,
            cast(null as {{ dbt.type_timestamp() }}) as valid_from,
            cast(null as {{ dbt.type_timestamp() }}) as valid_to
        where false
    {%- endif %}
),

open_spells as (
    select
        segment_name,
        canonical_user_id,
        valid_from
    from kept_spells
    where valid_to is null
),

-- spells an earlier build at this same as_of closed
closed_at_as_of as (
    select
        segment_name,
        canonical_user_id,
        valid_from
    from kept_spells
    where valid_to is not null
),

entered as (
    select
        current_members.segment_name,
        current_members.canonical_user_id,
        -- a member again at the instant its spell closed: the same spell, reopened
        coalesce(closed_at_as_of.valid_from, {{ as_of() }}) as valid_from,
        cast(null as {{ dbt.type_timestamp() }}) as valid_to
    from current_members
    left join open_spells
        on
            current_members.segment_name = open_spells.segment_name
            and current_members.canonical_user_id = open_spells.canonical_user_id
    left join closed_at_as_of
        on
            current_members.segment_name = closed_at_as_of.segment_name
            and current_members.canonical_user_id = closed_at_as_of.canonical_user_id
    where open_spells.canonical_user_id is null
),

exited as (
    select
        open_spells.segment_name,
        open_spells.canonical_user_id,
        open_spells.valid_from,
        {{ as_of() }} as valid_to
    from open_spells
    left join current_members
        on
            open_spells.segment_name = current_members.segment_name
            and open_spells.canonical_user_id = current_members.canonical_user_id
    where current_members.canonical_user_id is null
),

changes as (
    select * from entered
    union all
    select * from exited
),

final as (
    select
        segment_name,
        canonical_user_id,
        cast(valid_from as {{ dbt.type_timestamp() }}) as valid_from,
        cast(valid_to as {{ dbt.type_timestamp() }}) as valid_to
    from changes
)

select * from final
