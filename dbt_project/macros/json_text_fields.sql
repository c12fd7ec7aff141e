{#-
    The named keys of a JSON object as a struct of text values (NULL when a key is absent),
    parsing the object once. Numbers and booleans come back as their JSON text ('3', 'true'),
    so one try_cast path serves typed Parquet and all-text CSV alike.
-#}
{% macro json_text_fields(json_column, field_names) -%}
    {{ return(adapter.dispatch('json_text_fields', 'fashionrec')(json_column, field_names)) }}
{%- endmacro %}

{% macro duckdb__json_text_fields(json_column, field_names) -%}
    {%- set spec = {} -%}
    {%- for name in field_names -%}
        {%- do spec.update({name: 'VARCHAR'}) -%}
    {%- endfor -%}
    json_transform({{ json_column }}, '{{ tojson(spec) }}')
{%- endmacro %}


{#-
    The members of a JSON object that are neither named in `keys` nor NULL, as a JSON object.
    NULL members are dropped so that an empty CSV cell, a JSON null and an absent key all read
    the same. An RFC 7396 merge patch onto {} drops NULLs, and a patch of NULLs removes the keys.
-#}
{% macro json_extra_fields(json_column, keys) -%}
    {{ return(adapter.dispatch('json_extra_fields', 'fashionrec')(json_column, keys)) }}
{%- endmacro %}

{% macro duckdb__json_extra_fields(json_column, keys) -%}
    {%- set patch = {} -%}
    {%- for key in keys -%}
        {%- do patch.update({key: none}) -%}
    {%- endfor -%}
    json_merge_patch('{}', {{ json_column }}, '{{ tojson(patch) }}')::json
{%- endmacro %}

{#- Spark has no JSON type: the members come back as a JSON object of text values ({"weight": "1.5"}). -#}
{% macro spark__json_extra_fields(json_column, keys) -%}
    to_json(map_filter(
        from_json({{ json_column }}, 'map<string, string>'),
        (name, value) -> value is not null and not array_contains(array('{{ keys | join("', '") }}'), name)
    ))
{%- endmacro %}


{#- Spark: a JSON value read into a string field keeps its JSON text, as DuckDB's VARCHAR fields do. -#}
{% macro spark__json_text_fields(json_column, field_names) -%}
    from_json({{ json_column }}, 'struct<
        {%- for name in field_names -%}
            `{{ name }}`: string{{ ", " if not loop.last }}
        {%- endfor -%}
    >')
{%- endmacro %}
