{#- Touched-user incremental models (issue 16; docs/architecture.md, "Touched users"): a small
    "this run" model (int_touched_users) lists the canonical users whose output can change in
    this run; each touched-user model deletes those users' rows and inserts them again,
    recomputed from all their events. -#}

{#- The segment definitions and the trait catalogue, each read (and validated) once: the bands,
    the state and the definitions hash of one model share them (pass the result as
    `definitions`; validating the definitions is most of int_touched_users' compile time).
    Example: `touched_users_definitions().segments` -> [{'name': 'cart_abandoners', ...}]. -#}
{% macro touched_users_definitions() -%}
    {{ return({
        'segments': personalization.segment_definitions(),
        'catalogue': personalization.trait_catalogue(),
    }) }}
{%- endmacro %}


{#- When as_of moves forward from the previous run's as_of P to A, a time-relative output (a
    segment window, a catalogue trait window, a lifecycle threshold) of duration W measured back
    from as_of changes only for a user with an event t that crosses its edge: P - W < t <= A - W
    (leaving the window; W = 0: coming into view). The bands [from, to] in minutes, each meaning
    P - from < t <= A - to, one per distinct duration any segment rule, catalogue trait or
    lifecycle stage holds: derived from the definitions at compile time (every string
    duration_minutes parses, the one parser), never a hand-set var. A comparison of a
    calendar-day column (days_since_*: its value steps at midnight) with N days gives the band
    [(N + 2) days, (N - 2) days], which holds every crossing of >, >=, <, <=, = N. An absolute
    window `between {start, end}` closes at its end: ['start', 'end'] (ISO texts), a user with an
    event in it is touched when the end falls in (P, A] (a pending status resolves).
    Example: `touched_as_of_bands()` -> [[0, 0], [60, 60], [1440, 1440], ...]. -#}
{% macro touched_as_of_bands(definitions=none) -%}
    {%- set definitions = definitions or personalization.touched_users_definitions() -%}
    {%- set found = [
        [0, 0],
        [var('lifecycle_new_days') * 1440, var('lifecycle_new_days') * 1440],
        [var('lifecycle_active_days') * 1440, var('lifecycle_active_days') * 1440],
        [var('lifecycle_at_risk_days') * 1440, var('lifecycle_at_risk_days') * 1440],
    ] -%}
    {%- for trait in definitions.catalogue -%}
        {%- do personalization.collect_durations(trait, found) -%}
    {%- endfor -%}
    {%- for segment in definitions.segments -%}
        {%- do personalization.collect_durations(segment.get('rule'), found) -%}
    {%- endfor -%}
    {%- set bands = [] -%}
    {%- for band in found if band not in bands -%}
        {%- do bands.append(band) -%}
    {%- endfor -%}
    {{ return(bands) }}
{%- endmacro %}


{#- Appends to `found` the band [W, W] of every duration W (minutes) a rule or trait holds, at
    any depth (each string duration_minutes parses), the band of a trait comparison on a
    days_since_* column, and each absolute window [start, end]. Example: `collect_durations({'event': {'within': '7d'}}, found)`
    appends [10080, 10080]. -#}
{% macro collect_durations(node, found) -%}
    {%- if node is mapping -%}
        {%- if node.get('start') is string and node.get('end') is string -%}
            {%- do found.append([node.get('start'), node.get('end')]) -%}
        {%- endif -%}
        {%- set name = node.get('name') -%}
        {%- if name is string and name.startswith('days_since_') and node.get('value') is number -%}
            {%- set days = node.get('value') | int -%}
            {%- do found.append([(days + 2) * 1440, [days - 2, 0] | max * 1440]) -%}
        {%- endif -%}
        {%- for value in node.values() -%}
            {%- do personalization.collect_durations(value, found) -%}
        {%- endfor -%}
    {%- elif node is string -%}
        {%- set minutes = personalization.duration_minutes(node) -%}
        {%- if minutes is not none -%}
            {%- do found.append([minutes, minutes]) -%}
        {%- endif -%}
    {%- elif node is iterable -%}
        {%- for value in node -%}
            {%- do personalization.collect_durations(value, found) -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}


{#- The previous run the touched set is relative to: the latest successful build (raw.dbt_builds)
    that built every touched-user model this run builds (raw.dbt_build_models), so a failed or
    partial build is covered again by the next one. Returns {'full': reason or none,
    'finished_at': SQL literal, 'as_of': SQL literal, 'definitions': the
    touched_users_definitions() it read for the hash, for the bands (none when it returned
    before reading them)}. A full rebuild (every user) when there is
    no such build, when as_of moved backwards, on --full-refresh, when a privacy request
    (erasure, retention purge: rows deleted behind the models' backs) completed since, or when
    a definition changed (the latest hash a successful build up to it recorded in
    int_touched_user_runs differs, or none was recorded).
    Example: `touched_users_state().full` -> 'first build'. -#}
{% macro touched_users_state(definitions=none) -%}
    {%- set state = {'full': none, 'finished_at': 'null', 'as_of': 'null', 'definitions': none} -%}
    {%- if not execute -%}
        {%- do state.update({'full': 'parse'}) -%}
        {{ return(state) }}
    {%- endif -%}
    {%- if flags.FULL_REFRESH -%}
        {%- do state.update({'full': 'full refresh'}) -%}
        {{ return(state) }}
    {%- endif -%}
    {%- set log_schema = personalization.build_log_schema() -%}
    {%- set consumers = [] -%}
    {%- for node in graph.nodes.values()
        if node.resource_type == 'model'
        and 'model.personalization.int_touched_users' in node.depends_on.nodes
        and (selected_resources is not defined or node.unique_id in selected_resources) -%}
        {%- do consumers.append("'" ~ node.unique_id ~ "'") -%}
    {%- endfor -%}
    {%- do consumers.append("'model.personalization.int_touched_users'") -%}
    {%- set log_table = adapter.get_relation(target.database, 'raw', 'dbt_build_models') -%}
    {%- set runs_node = graph.nodes.get('model.personalization.int_touched_user_runs') -%}
    {%- set runs = adapter.get_relation(runs_node.database, runs_node.schema, runs_node.alias)
        if runs_node is not none else none -%}
    {%- if log_table is none or runs is none -%}
        {%- do state.update({'full': 'first build'}) -%}
        {{ return(state) }}
    {%- endif -%}
    {#- the privacy request log by its graph node, not ref(): callers (int_touched_users, the
        guard_keys tests) declare their own order, and a test must not depend on a model that
        sensor batches leave out (tag landing_independent) -#}
    {%- set requests = graph.nodes.get('model.personalization.privacy_requests').relation_name -%}
    {#- read only past the early returns: a full build needs neither the hash nor the bands -#}
    {%- set definitions = definitions or personalization.touched_users_definitions() -%}
    {%- do state.update({'definitions': definitions}) -%}
    {%- set found = run_query(
        "with complete as (select builds.build_id, builds.finished_at, builds.as_of"
        ~ " from " ~ log_schema ~ ".dbt_builds as builds"
        ~ " inner join " ~ log_schema ~ ".dbt_build_models as models"
        ~ " on builds.build_id = models.build_id"
        ~ " where builds.status = 'success' and models.unique_id in (" ~ consumers | join(', ') ~ ")"
        ~ " group by all having count(distinct models.unique_id) = " ~ consumers | length ~ ")"
        ~ " select cast(complete.finished_at as varchar), cast(complete.as_of as varchar),"
        ~ " complete.as_of > " ~ personalization.as_of() ~ " as is_backwards,"
        ~ " coalesce((select max(completed_at) from " ~ requests ~ ") > complete.finished_at, false)"
        ~ " as is_after_privacy_request,"
        ~ " (select runs.definitions_hash from " ~ runs ~ " as runs"
        ~ " inner join " ~ log_schema ~ ".dbt_builds as recorded on runs.build_id = recorded.build_id"
        ~ " where recorded.status = 'success' and recorded.finished_at <= complete.finished_at"
        ~ " order by recorded.finished_at desc limit 1)"
        ~ " is distinct from '" ~ personalization.touched_users_definitions_hash(definitions)
        ~ "' as is_redefined"
        ~ " from complete order by complete.finished_at desc limit 1"
    ) -%}
    {%- if found.rows | length == 0 -%}
        {%- do state.update({'full': 'first build'}) -%}
    {%- else -%}
        {%- set finished_at, previous_as_of, is_backwards, is_after_request, is_redefined = found.rows[0] -%}
        {%- do state.update({
            'finished_at': "cast('" ~ finished_at ~ "' as timestamp)",
            'as_of': "cast('" ~ previous_as_of ~ "' as timestamp)",
        }) -%}
        {%- if is_backwards -%}
            {%- do state.update({'full': 'as_of moved backwards'}) -%}
        {%- elif is_after_request -%}
            {%- do state.update({'full': 'privacy request'}) -%}
        {%- elif is_redefined -%}
            {%- do state.update({'full': 'definitions changed'}) -%}
        {%- endif -%}
    {%- endif -%}
    {{ return(state) }}
{%- endmacro %}


{#- A hash of everything that shapes the rows of the touched-user models besides the events:
    the segment definitions, the trait catalogue, the tracking plan and the vars they read.
    Example: `touched_users_definitions_hash()` -> 'a3f1...'. -#}
{% macro touched_users_definitions_hash(definitions=none) -%}
    {%- set definitions = definitions or personalization.touched_users_definitions() -%}
    {%- set shaping = {
        'segments': definitions.segments,
        'catalogue': definitions.catalogue,
        'tracking_plan': var('tracking_plan', none) or (
            graph.nodes.get('model.personalization.stg_tracking_plan', {}).get('config', {})
            .get('meta', {}).get('tracking_plan') if execute else none),
        'vars': {},
    } -%}
    {%- for name in ['session_timeout_minutes', 'lifecycle_new_days', 'lifecycle_active_days',
        'lifecycle_at_risk_days', 'reporting_currency', 'default_currency',
        'max_users_per_anonymous_id', 'analytics_consent_policy', 'consent_default',
        'consent_signals'] -%}
        {%- do shaping['vars'].update({name: var(name)}) -%}
    {%- endfor -%}
    {{ return(local_md5(tojson(shaping, sort_keys=true))) }}
{%- endmacro %}


{#- The filter of a touched-user model: on an incremental run, only the touched users (every
    user on a full build, in a unit test, which has no `this`, and when every_user is true).
    Example: `where {{ touched_users_only('canonical_user_id') }}`. -#}
{% macro touched_users_only(column, every_user=false) -%}
    {%- if this and is_incremental() and not every_user -%}
        {{ column }} in (select canonical_user_id from {{ ref('int_touched_users') }})
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}


{#- The delete of a touched-user model (the touched_users materialisation runs it before its
    insert, macros/materializations/touched_users.sql): on an incremental run, delete the
    touched users' rows, which the model then inserts again (a user who no longer has rows, such
    as an anonymous id stitched to a user, is deleted and not inserted; every row when
    every_user is true). dbt's delete+insert deletes only the keys it inserts, which would keep
    such rows. Example: `delete_touched_users()` -> `delete from <this> where ...`. -#}
{% macro delete_touched_users(every_user=false) -%}
    {%- if this and is_incremental() -%}
        delete from {{ this }}
        where {{ personalization.touched_users_only('canonical_user_id', every_user) }}
    {%- else -%}
        select 1 as nothing_to_delete
    {%- endif -%}
{%- endmacro %}


{#- The post-hook of a touched-user model with a computed_at column: set it to this as_of on the
    rows of the users the run did not touch. Nothing on a table (Spark's Parquet tables, which
    refuse UPDATE, rebuild every row at this as_of anyway).
    Example: `post_hook="{{ stamp_computed_at() }}"`. -#}
{% macro stamp_computed_at() -%}
    {%- if config.get('materialized') in ['incremental', 'touched_users'] -%}
        update {{ this }} set computed_at = {{ as_of() }} where computed_at != {{ as_of() }}
    {%- else -%}
        select 1 as nothing_to_stamp
    {%- endif -%}
{%- endmacro %}


{#- Whether fct_segment_membership re-evaluates every user this run (its touched_every_user
    config): a rule reads a column that changes for untouched users. Read at run time, after the
    definitions are validated. Example: `segment_membership_reads_every_user()` -> false. -#}
{% macro segment_membership_reads_every_user() -%}
    {{ return(personalization.segment_reads_every_user(personalization.segment_definitions())) }}
{%- endmacro %}


{#- Whether a segment rule reads a profile column that can change for a user who is not touched:
    a percentile score (it moves when any other user changes), the imputed age (refitted by the
    daily build) or a cluster (refitted daily). fct_segment_membership then evaluates every user.
    Example: `segment_reads_every_user([{'rule': {'trait': {'name': 'recency_score'}}}])` -> true. -#}
{% macro segment_reads_every_user(definitions) -%}
    {%- set found = [] -%}
    {%- do personalization.collect_every_user_reads(definitions, found) -%}
    {{ return(found | length > 0) }}
{%- endmacro %}


{#- Appends to `found` every cluster condition and every trait condition on a column of
    segment_every_user_columns() in a rule, at any depth.
    Example: `collect_every_user_reads({'cluster': {'cluster_id': 1}}, found)` appends it. -#}
{% macro collect_every_user_reads(node, found) -%}
    {%- if node is mapping -%}
        {%- if 'cluster' in node -%}
            {%- do found.append(node) -%}
        {%- endif -%}
        {%- if node.get('trait') is mapping
            and node.get('trait').get('name') in personalization.segment_every_user_columns() -%}
            {%- do found.append(node) -%}
        {%- endif -%}
        {%- for value in node.values() -%}
            {%- do personalization.collect_every_user_reads(value, found) -%}
        {%- endfor -%}
    {%- elif node is iterable and node is not string -%}
        {%- for value in node -%}
            {%- do personalization.collect_every_user_reads(value, found) -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}


{#- dim_user_profiles columns that change for users a run does not touch: the percentile scores
    and the imputed age with what derives from it.
    Example: `'recency_score' in segment_every_user_columns()` -> true. -#}
{% macro segment_every_user_columns() -%}
    {{ return(['recency_score', 'frequency_score', 'monetary_score', 'age', 'age_band',
               'age_source', 'age_imputation_method']) }}
{%- endmacro %}


{#- Whether this run's touched set is every user (int_touched_users.is_full_rebuild, read from
    the table this run built; false for an empty touched set). The touched-events source of a
    model (touched_events) and int_touched_events decide on the same rows, so a model never reads
    a touched-events table that was left empty. True at parse time and before the first build
    (no int_touched_users yet: every model then builds from all events).
    Example: `touched_run_is_full()` -> false on a micro-batch. -#}
{% macro touched_run_is_full() -%}
    {%- set touched = ref('int_touched_users') -%}
    {%- if not execute
        or adapter.get_relation(touched.database, touched.schema, touched.identifier) is none -%}
        {{ return(true) }}
    {%- endif -%}
    {%- set found = run_query(
        "select count(*) from " ~ touched ~ " where is_full_rebuild") -%}
    {{ return(found.rows[0][0] > 0) }}
{%- endmacro %}


{#- The stitched events a touched-user model reads: on an incremental run that recomputes some
    users, int_touched_events (the touched users' events, built once per run); otherwise (a full
    build, a table on Spark, every user touched, every_user, or a selection that does not
    rebuild int_touched_events, whose rows would be a past run's) the int_events_stitched view.
    Both refs are taken at parse time, so the model depends on both.
    Example: `select * from {{ touched_events() }} where {{ touched_users_only('canonical_user_id') }}`. -#}
{% macro touched_events(every_user=false) -%}
    {%- set stitched = ref('int_events_stitched') -%}
    {%- set touched = ref('int_touched_events') -%}
    {%- set built_this_run = selected_resources is not defined
        or 'model.personalization.int_touched_events' in selected_resources -%}
    {%- if this and is_incremental() and not every_user and built_this_run
        and not touched_run_is_full() -%}
        {{ return(touched) }}
    {%- endif -%}
    {{ return(stitched) }}
{%- endmacro %}


{#- The rows (per-identity days) that can belong to a touched user, by one column of raw
    identities (int_touched_identities): a cheap semi-join before any stitching join, whose result
    the model still keys and keeps for the touched users by canonical_user_id (a superset here is
    harmless). Lines with both a userId and an anonymousId: touched_lines(). Every row (true)
    when every_user is true; by default, when the model is not incremental (a full build, a table
    on Spark, a unit test).
    Example: `where {{ touched_identities_only('identity_key') }}`. -#}
{% macro touched_identities_only(identity_column, every_user=none) -%}
    {%- set identities = ref('int_touched_identities') -%}
    {%- if every_user is none -%}
        {%- set every_user = not (this and is_incremental()) -%}
    {%- endif -%}
    {%- if every_user -%}
        true
    {%- else -%}
        {{ identity_column }} in (select raw_identity from {{ identities }})
    {%- endif -%}
{%- endmacro %}


{#- The rows of `relation` (any relation with user_id and anonymous_id columns) whose userId or
    anonymousId is a touched identity (int_touched_identities), as a SELECT: two lookups, one per
    column, joined by union. Each is a join on a plain column, which DuckDB turns into a filter
    inside the scan (the range of the ids it looks up): a micro-batch that touches a few users
    reads the two id columns of the history and only the few rows in range, where one `or` of
    both lookups read every column of every line first (int_touched_events in a one-user
    micro-batch at 10M events: 1.7-2.1 s before, 0.4-0.5 s after). `by_column`: look each identity up only in the columns
    restricted_identity_keys saw it in (its userId and anonymousId flags: exact for staged lines,
    which that table is built from, and narrower ranges); false for other lines (quarantined
    lines carry ids the table never saw in that column). The range only prunes when the ids
    looked up are few: past var('touched_lookup_by_range_max') touched identities (an hourly run touching
    thousands of users) each lookup's range spans nearly every id, the union would read the
    history twice, and one `or` of both lookups is used instead (one read). Every row when the
    model recomputes every user (`every_user`, by default: not an incremental run of the model).
    Example: `from ({{ touched_lines(ref('stg_events'), by_column=true) }}) as events` -#}
{% macro touched_lines(relation, by_column, every_user=none) -%}
    {%- set identities = ref('int_touched_identities') -%}
    {%- if every_user is none -%}
        {%- set every_user = not (this and is_incremental()) -%}
    {%- endif -%}
    {%- if every_user -%}
        select * from {{ relation }}
    {%- else -%}
        {%- set as_user = "(select raw_identity from " ~ identities ~ (" where is_user_id" if by_column else "") ~ ")" -%}
        {%- set as_anonymous = "(select raw_identity from " ~ identities ~ (" where is_anonymous_id" if by_column else "") ~ ")" -%}
        {%- set identity_count = run_query("select count(*) from " ~ identities).rows[0][0] if execute else 0 %}
        {%- if identity_count <= var('touched_lookup_by_range_max') %}
            select * from {{ relation }}
            where user_id in {{ as_user }}
            union all
            select * from {{ relation }}
            where
                anonymous_id in {{ as_anonymous }}
                and (user_id is null or user_id not in {{ as_user }})
        {%- else %}
            select * from {{ relation }}
            where user_id in {{ as_user }} or anonymous_id in {{ as_anonymous }}
        {%- endif %}
    {%- endif -%}
{%- endmacro %}


{#- The stitching of events (int_events_stitched, int_touched_events: one definition): two CTEs,
    `resolved` (each event's raw canonical identity: its userId, else the user its anonymous id
    was identified as, else the anonymous id) and `stitched` (the pseudonymous key instead of the
    raw ids, and only users the analytics consent policy lets be profiled). The model defines the
    CTEs named by the arguments: events (stg_events columns), identity_map, identity_keys and
    consent. Example: `{{ stitch_events_ctes('events') }}`, then `select * from stitched`. -#}
{% macro stitch_events_ctes(events, identity_map='identity_map', identity_keys='identity_keys',
    consent='consent') -%}
resolved as (
    select
        {{ events }}.*,
        coalesce({{ events }}.user_id, {{ identity_map }}.user_id, {{ events }}.anonymous_id)
            as raw_canonical_id,
        case
            when {{ events }}.user_id is not null then 'user_id'
            when {{ identity_map }}.user_id is not null then 'stitched'
            else 'anonymous'
        end as identity_source
    from {{ events }}
    left join {{ identity_map }}
        on {{ events }}.anonymous_id = {{ identity_map }}.anonymous_id
    where {{ events }}.event_at <= {{ as_of() }}
),

stitched as (
    select
        {{ star_exclude('resolved', ['user_id', 'anonymous_id', 'previous_id', 'raw_canonical_id']) }},
        {{ identity_keys }}.user_key as canonical_user_id
    from resolved
    left join {{ identity_keys }}
        on resolved.raw_canonical_id = {{ identity_keys }}.raw_identity
    -- the analytics consent policy: a user it does not allow to be profiled is not seen here
    inner join {{ consent }}
        on {{ identity_keys }}.user_key = {{ consent }}.canonical_user_id
    where {{ consent }}.is_profiling_allowed
)
{%- endmacro %}


{#- The server time a consent signal is ordered by (int_user_consent), and the time a grant
    comes into view as as_of passes it (int_touched_users: one expression for both): receivedAt,
    else the client timestamp unless it is stamped in the future (a future_timestamp line: not
    trusted), else the load time. Example: `{{ consent_signal_at('checked') }} as consent_at`. -#}
{% macro consent_signal_at(relation) -%}
    coalesce(
        {{ relation }}.received_at,
        {{ consent_client_at(relation) }},
        {{ relation }}.loaded_at
    )
{%- endmacro %}


{#- The client time of a consent signal: its timestamp, unless stamped in the future (null).
    Example: `{{ consent_client_at('checked') }} as client_at`. -#}
{% macro consent_client_at(relation) -%}
    case
        when not {{ array_contains(relation ~ '.reasons', "'future_timestamp'") }}
            then {{ relation }}.event_at
    end
{%- endmacro %}


{#- The materialisation of a touched-user model: touched_users where the engine keeps
    incremental tables (incremental_or_table() decides, once for every model), else a plain
    table (Spark's Parquet tables cannot delete rows: every build recomputes every user).
    Example: `config(materialized=touched_users_or_table())` -> `touched_users` on DuckDB. -#}
{% macro touched_users_or_table() -%}
    {{ return('touched_users' if personalization.incremental_or_table() == 'incremental' else 'table') }}
{%- endmacro %}


{#- Whether an incremental run deletes every row of a touched-user model (its config
    `touched_every_user`): a boolean, or the name of a project macro without arguments that
    returns one when the model runs (fct_segment_membership: whether a rule reads a column that
    changes for untouched users, known only once the definitions are read).
    Example: `touched_users_every_user('segment_membership_reads_every_user')` -> false. -#}
{% macro touched_users_every_user(setting) -%}
    {%- if setting is string -%}
        {%- set found = context.get(setting) -%}
        {%- if found is none -%}
            {{ exceptions.raise_compiler_error(
                "touched_every_user names no macro: '" ~ setting ~ "' (model " ~ this ~ ")") }}
        {%- endif -%}
        {{ return(found() is sameas true) }}
    {%- endif -%}
    {{ return(setting is sameas true) }}
{%- endmacro %}


{#- The schema guard of a touched-user model on an incremental run (what on_schema_change='fail'
    gave, without building the rows first): one query compares the columns of the model's query
    (DuckDB's DESCRIBE binds it without running it) with the table's, by name and type, and
    raises a compiler error naming every difference. Returns whether the table's and columns'
    comments already equal the model's descriptions (persist_docs is then skipped).
    Example: `touched_users_schema_guard(this, compiled_code)` -> true, or an error
    "fct_sessions: the model's columns differ from the table's (on_schema_change: fail):
    new_column (model VARCHAR, table missing); run with --full-refresh". -#}
{% macro touched_users_schema_guard(relation, sql) -%}
    {%- set found = run_query(
        "with model_columns as (select column_name, column_type from (describe " ~ sql ~ "\n)),"
        ~ " table_columns as (select column_name, data_type, comment from duckdb_columns()"
        ~ " where database_name = '" ~ relation.database ~ "' and schema_name = '" ~ relation.schema
        ~ "' and table_name = '" ~ relation.identifier ~ "')"
        ~ " select coalesce(model_columns.column_name, table_columns.column_name) as column_name,"
        ~ " model_columns.column_type, table_columns.data_type, table_columns.comment,"
        ~ " (select comment from duckdb_tables() where database_name = '" ~ relation.database
        ~ "' and schema_name = '" ~ relation.schema ~ "' and table_name = '" ~ relation.identifier
        ~ "') as table_comment"
        ~ " from model_columns full outer join table_columns"
        ~ " on model_columns.column_name = table_columns.column_name"
        ~ " order by column_name"
    ) -%}
    {%- set changed = [] -%}
    {%- set docs = {'same': true} -%}
    {%- set persisted = config.get('persist_docs', {}) -%}
    {%- for row in found.rows -%}
        {%- set name, model_type, table_type, comment, table_comment = row -%}
        {%- if model_type != table_type -%}
            {%- do changed.append(name ~ ' (model ' ~ (model_type or 'missing') ~ ', table '
                ~ (table_type or 'missing') ~ ')') -%}
        {%- endif -%}
        {%- set described = model.columns.get(name, {}).get('description') -%}
        {%- if persisted.get('columns') and described and described != comment -%}
            {%- do docs.update({'same': false}) -%}
        {%- endif -%}
        {%- if loop.first and persisted.get('relation') and model.description
            and model.description != table_comment -%}
            {%- do docs.update({'same': false}) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if changed -%}
        {{ exceptions.raise_compiler_error(
            relation.identifier ~ ": the model's columns differ from the table's (on_schema_change: fail): "
            ~ changed | join('; ') ~ "; run with --full-refresh") }}
    {%- endif -%}
    {{ return(docs.same) }}
{%- endmacro %}


{#- dbt's is_incremental(), also true for a touched_users model: an existing table, not a full
    refresh (false without a `this`: parsing, the segment SQL renderer). The touched-user macros (touched_users_only, touched_events, ...) and the models'
    `{% if is_incremental() %}` blocks then read only the touched users, as they did under
    dbt's incremental materialisation. Overrides dbt's global macro of the same name.
    Example: `is_incremental()` -> true on a micro-batch of fct_sessions. -#}
{% macro is_incremental() -%}
    {%- if not execute or not this -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set relation = adapter.get_relation(this.database, this.schema, this.table) -%}
    {{ return(relation is not none
        and relation.type == 'table'
        and model.config.materialized in ['incremental', 'touched_users']
        and not should_full_refresh()) }}
{%- endmacro %}


{#- The state of a model that is incremental by load high-water mark (restricted_identity_keys,
    int_identity_links, int_order_amounts: upstream of int_touched_users, so they cannot read
    it): the lines new to this run are those (their loaded_at) loaded after the latest
    `mark_column` the table holds (a literal, so DuckDB skips the row groups loaded before it),
    or, when `as_of_column`
    is given, stamped in (previous as_of, this as_of] (a later as_of brings earlier-loaded lines
    into view). The previous as_of is that of the latest build that built this model
    (raw.dbt_build_models). A full rebuild (`full`: the reason; load_mark_delete_all() empties
    the table first) on a first or full-refresh build, with no logged previous build, when
    as_of moved backwards, or when a privacy request (erasure, retention purge: lines deleted
    behind the model's back) completed since, or, with `fingerprint` (a SQL expression of
    everything else that shapes the rows, such as a seed and vars; the model stores it in its
    column input_fingerprint), when it differs from the table's. With `as_of_mark` (a column of
    the as_of each row was built at), the previous as_of is the table's latest, written in the
    same transaction as its rows: a model that merges new lines into its rows (counts) then
    reads each line exactly once. Returns {'full': reason or none, 'new_lines': a SQL condition
    on the model's lines, 'true' when full}.
    Example: `load_mark_state('loaded_at', 'event_at').new_lines`
    -> `(loaded_at > cast('2026-01-05 10:00:00' as timestamp) or (event_at > ... and event_at <= ...))`. -#}
{% macro load_mark_state(mark_column, as_of_column=none, fingerprint=none, as_of_mark=none) -%}
    {%- set state = {'full': none, 'new_lines': 'true'} -%}
    {%- if not is_incremental() -%}
        {%- do state.update({'full': 'not incremental'}) -%}
        {{ return(state) }}
    {%- endif -%}
    {%- set log_schema = personalization.build_log_schema() -%}
    {%- if adapter.get_relation(target.database, 'raw', 'dbt_build_models') is none -%}
        {%- do state.update({'full': 'no build log'}) -%}
        {{ return(state) }}
    {%- endif -%}
    {%- set found = run_query(
        "with logged as (select builds.as_of, models.finished_at"
        ~ " from " ~ log_schema ~ ".dbt_builds as builds"
        ~ " inner join " ~ log_schema ~ ".dbt_build_models as models"
        ~ " on builds.build_id = models.build_id"
        ~ " where models.unique_id = '" ~ model.unique_id ~ "'"
        ~ " order by models.finished_at desc limit 1),"
        ~ " previous as (select "
        ~ ("coalesce((select max(" ~ as_of_mark ~ ") from " ~ this ~ "), logged.as_of)"
            if as_of_mark else "logged.as_of") ~ " as as_of, logged.finished_at from logged)"
        ~ " select cast((select max(" ~ mark_column ~ ") from " ~ this ~ ") as varchar),"
        ~ " cast(previous.as_of as varchar),"
        ~ " previous.as_of > " ~ personalization.as_of() ~ " as is_backwards,"
        ~ " coalesce((select max(completed_at) from " ~ ref('privacy_requests') ~ ")"
        ~ " > previous.finished_at, false) as is_after_privacy_request,"
        ~ (" (select max(input_fingerprint) from " ~ this ~ ") is distinct from (" ~ fingerprint ~ ")"
            if fingerprint else " false") ~ " as is_changed,"
        ~ " previous.as_of = " ~ personalization.as_of() ~ " as is_same_as_of"
        ~ " from previous"
    ) -%}
    {%- if found.rows | length == 0 -%}
        {%- do state.update({'full': 'no previous build'}) -%}
        {{ return(state) }}
    {%- endif -%}
    {%- set mark, previous_as_of, is_backwards, is_after_request, is_changed, is_same_as_of
        = found.rows[0] -%}
    {%- if is_backwards -%}
        {%- do state.update({'full': 'as_of moved backwards'}) -%}
    {%- elif is_after_request -%}
        {%- do state.update({'full': 'privacy request'}) -%}
    {%- elif is_changed -%}
        {%- do state.update({'full': 'inputs changed'}) -%}
    {%- else -%}
        {%- set condition = "loaded_at > cast('" ~ (mark or '1900-01-01') ~ "' as timestamp)" -%}
        {#- no band when as_of did not move: a bare load-stamp filter lets DuckDB skip row groups -#}
        {%- if as_of_column and not is_same_as_of -%}
            {%- set condition = condition ~ " or (" ~ as_of_column ~ " > cast('" ~ previous_as_of
                ~ "' as timestamp) and " ~ as_of_column ~ " <= " ~ personalization.as_of() ~ ")" -%}
        {%- endif -%}
        {%- do state.update({'new_lines': '(' ~ condition ~ ')'}) -%}
    {%- endif -%}
    {{ return(state) }}
{%- endmacro %}


{#- The pre-hook of a model incremental by load high-water mark: on an incremental run that
    load_mark_state() makes a full rebuild, delete every row first (the model then inserts every
    row: rows whose lines a privacy request removed are gone, as after a full refresh).
    Example: `pre_hook="{{ load_mark_delete_all('loaded_at') }}"`. -#}
{% macro load_mark_delete_all(mark_column, as_of_column=none, fingerprint=none, as_of_mark=none) -%}
    {%- if is_incremental()
        and personalization.load_mark_state(mark_column, as_of_column, fingerprint, as_of_mark).full -%}
        delete from {{ this }}
    {%- else -%}
        select 1 as nothing_to_delete
    {%- endif -%}
{%- endmacro %}


{#- The anonymous side of an identity link on a stg_events line: an alias's previousId (else its
    anonymousId), any other line's anonymousId (int_identity_links).
    Example: `{{ identity_link_anonymous_id() }} as anonymous_id`. -#}
{% macro identity_link_anonymous_id() -%}
    case when event_type = 'alias' then coalesce(previous_id, anonymous_id) else anonymous_id end
{%- endmacro %}
