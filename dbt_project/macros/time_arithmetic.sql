{#- Elapsed seconds from one timestamp to a later one (fractional, not a count of boundaries). -#}
{% macro seconds_between(start_ts, end_ts) -%}
    {{ return(adapter.dispatch('seconds_between', 'fashionrec')(start_ts, end_ts)) }}
{%- endmacro %}

{% macro duckdb__seconds_between(start_ts, end_ts) -%}
    (date_diff('microsecond', {{ start_ts }}, {{ end_ts }}) / 1000000.0)
{%- endmacro %}

{% macro spark__seconds_between(start_ts, end_ts) -%}
    ((unix_micros({{ end_ts }}) - unix_micros({{ start_ts }})) / 1e6)
{%- endmacro %}
