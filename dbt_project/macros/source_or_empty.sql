{#-
    The rows of a source table that a pipeline step creates on its first run, or no rows with the
    same columns while the table does not exist yet: the evaluation assets create eval_runs,
    eval_ranks and eval_metrics when they first run, and the project must build (and its contracts
    hold) on a fresh warehouse before that.

    columns: (name, type) pairs in the table's order; they must match what the step creates
    (evaluation/tables.py, EVAL_TABLE_COLUMNS).
-#}
{% macro source_or_empty(relation, columns) -%}
    {% if execute and load_relation(relation) is none %}
    select
        {%- for name, type in columns %}
        cast(null as {{ type }}) as {{ name }}{{ "," if not loop.last }}
        {%- endfor %}
    where false
    {% else %}
    select * from {{ relation }}
    {% endif %}
{%- endmacro %}
