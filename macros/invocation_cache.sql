{#- A dict shared by every node of one dbt invocation, for values computed once per invocation
    (the validated trait catalogue and segment definitions: int_touched_users, the touched-user
    state, the definitions hash, int_user_catalogue_traits and fct_segment_membership each read
    them, and each read validated them again, about 75 ms apiece). It lives in `graph`, the one
    dict every node's context shares, under the invocation id: a process that reuses a parsed
    manifest for another invocation (the warm dbt server's children, tests) starts empty, so a
    changed var or table is read again. Without a graph (unit tests) it is a fresh dict each
    call: nothing is cached. Example: `invocation_cache().get('trait_catalogue')` -> none. -#}
{% macro invocation_cache() -%}
    {%- if not (graph is mapping and 'nodes' in graph and graph['nodes'] | length > 0) -%}
        {{ return({}) }}
    {%- endif -%}
    {%- set cache = graph.get('personalization_invocation_cache') -%}
    {%- if cache is none or cache.get('invocation_id') != invocation_id -%}
        {%- set cache = {'invocation_id': invocation_id} -%}
        {%- do graph.update({'personalization_invocation_cache': cache}) -%}
    {%- endif -%}
    {{ return(cache) }}
{%- endmacro %}
