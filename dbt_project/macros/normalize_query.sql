{#-
    The normal form of a search query, shared by every model that groups or joins on queries:
    lower-case, ASCII punctuation to spaces, whitespace runs collapsed, trimmed; NULL when
    nothing is left. Python code that normalises a live query must do the same:
        " ".join(re.sub(f"[{re.escape(string.punctuation)}]", " ", q.lower()).split()) or None
-#}
{% macro normalize_query(query) -%}
    {{ return(adapter.dispatch('normalize_query', 'fashionrec')(query)) }}
{%- endmacro %}

{% macro duckdb__normalize_query(query) -%}
    nullif(
        trim(regexp_replace(regexp_replace(lower({{ query }}), '[[:punct:]]', ' ', 'g'), '\s+', ' ', 'g')),
        ''
    )
{%- endmacro %}

{#- Java's \p{Punct} is ASCII punctuation, as POSIX [[:punct:]] is. -#}
{% macro spark__normalize_query(query) -%}
    nullif(
        trim(regexp_replace(regexp_replace(lower({{ query }}), '\\p{Punct}', ' '), '\\s+', ' ')),
        ''
    )
{%- endmacro %}
