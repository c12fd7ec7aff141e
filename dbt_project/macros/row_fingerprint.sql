{#-
    A 64-bit hash that is equal for two rows when the listed expressions are all equal (NULLs
    compare equal), for finding duplicate rows with aggregates instead of a self-join. Callers
    group by the row's id as well, so a false match would need two rows with the same id to
    collide (about 1 in 2^64).
-#}
{% macro row_fingerprint(expressions) -%}
    {{ return(adapter.dispatch('row_fingerprint', 'fashionrec')(expressions)) }}
{%- endmacro %}

{% macro duckdb__row_fingerprint(expressions) -%}
    hash({{ expressions | join(', ') }})
{%- endmacro %}

{#-
    Spark's hashes skip NULL arguments, so (NULL, 'x') and ('x', NULL) would hash alike: the values are
    hashed as a JSON object with one key per position, in which a NULL is an absent key.
-#}
{% macro spark__row_fingerprint(expressions) -%}
    xxhash64(to_json(named_struct(
        {%- for expression in expressions -%}
            'c{{ loop.index }}', {{ expression }}{{ ", " if not loop.last }}
        {%- endfor -%}
    )))
{%- endmacro %}
