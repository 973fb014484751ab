{#- The reference time for every window ("last 24 hours"), as a UTC timestamp expression.
    The var `as_of` (an ISO timestamp) fixes it; else the PERSONALIZATION_AS_OF environment
    variable; unset, it is the time of the run. Nothing else in the project reads the clock.
    (The Python entry points resolve it the same way and pass the var; see docs/architecture.md.)
    A fixed value is converted to UTC here, once, so compiled SQL carries one short literal;
    anything that is not an ISO timestamp is left to the SQL cast, which yields null and stops the
    build in the on-run-start check (macros/build_log.sql) with a message naming the value. -#}
{% macro as_of() -%}
    {%- set value = var('as_of', none) or env_var('PERSONALIZATION_AS_OF', '') -%}
    {%- if value -%}
        {%- set text = (value | string) | trim -%}
        {%- set iso = '[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]+)?)?)?'
            ~ '([zZ]|[+-][0-9]{2}(:?[0-9]{2})?)?' -%}
        {%- if modules.re.fullmatch(iso, text) -%}
            {%- set parsed = modules.datetime.datetime.fromisoformat(
                text.replace('z', 'Z').replace('Z', '+00:00')) -%}
            {%- if parsed.tzinfo is not none -%}
                {%- set parsed = parsed.astimezone(modules.pytz.utc).replace(tzinfo=none) -%}
            {%- endif -%}
            {{ return("cast('" ~ parsed.isoformat(' ') ~ "' as timestamp)") }}
        {%- endif -%}
        {{ return(to_utc_timestamp(quoted_literal(text))) }}
    {%- else -%}
        {{ return(adapter.dispatch('current_utc_timestamp', 'personalization')()) }}
    {%- endif -%}
{%- endmacro %}

{% macro duckdb__current_utc_timestamp() -%}
    (get_current_timestamp() at time zone 'UTC')
{%- endmacro %}

{% macro default__current_utc_timestamp() -%}
    {{ dbt.current_timestamp() }}
{%- endmacro %}
