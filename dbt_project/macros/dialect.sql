{#- Small differences of SQL dialect that the models would otherwise spell for one engine. -#}

{#-
    The hint after `name as` in a WITH list that computes a CTE once for all its readers; engines
    without the hint plan the reuse themselves.
-#}
{% macro cte_materialized() -%}
    {{ return(adapter.dispatch('cte_materialized', 'fashionrec')()) }}
{%- endmacro %}

{% macro duckdb__cte_materialized() -%}
    materialized
{%- endmacro %}

{% macro default__cte_materialized() -%}
{%- endmacro %}


{#- The window function `last value of expression that is not NULL` (follow it with `over (...)`). -#}
{% macro last_non_null(expression) -%}
    {{ return(adapter.dispatch('last_non_null', 'fashionrec')(expression)) }}
{%- endmacro %}

{% macro duckdb__last_non_null(expression) -%}
    last_value({{ expression }} ignore nulls)
{%- endmacro %}

{% macro spark__last_non_null(expression) -%}
    last_value({{ expression }}, true)
{%- endmacro %}
