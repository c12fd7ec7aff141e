{#-
    A struct (named tuple) of the given columns, keeping their names:
    struct_of(['seq_no', 'ts']) -> struct_pack(seq_no := seq_no, ts := ts).
    Each entry is a column name, or a (name, expression) pair.
-#}
{% macro struct_of(fields) -%}
    {{ return(adapter.dispatch('struct_of', 'fashionrec')(fields)) }}
{%- endmacro %}

{% macro duckdb__struct_of(fields) -%}
    struct_pack(
        {%- for field in fields -%}
            {%- if field is string -%}
                {{ field }} := {{ field }}
            {%- else -%}
                {{ field[0] }} := {{ field[1] }}
            {%- endif -%}
            {{ ", " if not loop.last }}
        {%- endfor -%}
    )
{%- endmacro %}

{% macro spark__struct_of(fields) -%}
    named_struct(
        {%- for field in fields -%}
            {%- if field is string -%}
                '{{ field }}', {{ field }}
            {%- else -%}
                '{{ field[0] }}', {{ field[1] }}
            {%- endif -%}
            {{ ", " if not loop.last }}
        {%- endfor -%}
    )
{%- endmacro %}


{#- The values of a group as a list ordered by order_by (an ordered array_agg). -#}
{% macro ordered_list(value, order_by) -%}
    {{ return(adapter.dispatch('ordered_list', 'fashionrec')(value, order_by)) }}
{%- endmacro %}

{% macro duckdb__ordered_list(value, order_by) -%}
    list({{ value }} order by {{ order_by }})
{%- endmacro %}

{#- Spark's collect_list has no order: (key, value) pairs are collected, sorted by key, and the keys dropped. -#}
{% macro spark__ordered_list(value, order_by) -%}
    transform(
        array_sort(collect_list(named_struct('sort_key', {{ order_by }}, 'value', {{ value }}))),
        pair -> pair.value
    )
{%- endmacro %}


{#- An empty list literal (its element type comes from the context it is used in). -#}
{% macro empty_list() -%}
    {{ return(adapter.dispatch('empty_list', 'fashionrec')()) }}
{%- endmacro %}

{% macro duckdb__empty_list() -%}
    []
{%- endmacro %}

{% macro spark__empty_list() -%}
    array()
{%- endmacro %}
