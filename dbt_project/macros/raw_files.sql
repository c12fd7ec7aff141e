{#-
    Where a raw source's file lies: its `external_location` (models/staging/__sources.yml, where the
    FASHIONREC_RAW_* variables decide it), unquoted. Empty for a source that is a table (and in a unit
    test, whose input stands in for the source), and while dbt parses (the graph is not built yet).
-#}
{% macro raw_file_location(relation) -%}
    {%- set location = relation.external if relation.external is defined else none -%}
    {%- if not location and execute and graph.sources is defined -%}
        {%- set nodes = graph.sources.values() | selectattr('source_name', 'equalto', 'raw')
                        | selectattr('name', 'equalto', relation.identifier) | list -%}
        {%- set location = nodes[0].config.get('external_location') if nodes else none -%}
    {%- endif -%}
    {{ return((location or '') | trim | replace("'", "")) }}
{%- endmacro %}


{#- The temporary view through which an engine without inline file readers reads a raw file. -#}
{% macro raw_file_view(relation) -%}
    {{ return('fashionrec_raw_' ~ relation.identifier) }}
{%- endmacro %}


{#-
    Run at the start of every dbt command (dbt_project.yml, on-run-start): on engines that read some
    files through views, one temporary view per such raw source, with the reader its extension names
    (Spark: CSV and JSON lines; it reads Parquet inline). DuckDB reads every file inline
    (read_raw_rows) and needs nothing here.
-#}
{% macro register_raw_files() -%}
    {{ return(adapter.dispatch('register_raw_files', 'fashionrec')()) }}
{%- endmacro %}

{% macro default__register_raw_files() -%}
{%- endmacro %}

{% macro spark__register_raw_files() -%}
    {%- if execute -%}
        {%- for node in graph.sources.values() if node.source_name == 'raw' -%}
            {%- set relation = source('raw', node.name) -%}
            {%- set location = raw_file_location(relation) -%}
            {%- set lowered = location.lower() -%}
            {%- set reader = none -%}
            {%- if lowered.endswith('.csv') -%}
                {#- every column as text (no inferSchema); a short row is padded with NULLs -#}
                {%- set reader = 'csv' -%}
                {%- set options = {'header': 'true', 'sep': ',', 'quote': '"', 'escape': '"',
                                   'multiLine': 'true', 'mode': 'PERMISSIVE'} -%}
            {%- elif lowered.endswith('.jsonl') or lowered.endswith('.json') -%}
                {%- set reader, options = 'text', {} -%}
            {%- elif not lowered.endswith('.parquet') -%}
                {{ exceptions.raise_compiler_error(
                    "Raw file " ~ location ~ " has an unsupported extension: expected .parquet, .csv, .jsonl or .json"
                ) }}
            {%- endif -%}
            {%- if reader is not none -%}
            {%- do options.update({'path': location}) -%}
            {%- call statement('register_' ~ node.name) -%}
                create or replace temporary view {{ raw_file_view(relation) }}
                using {{ reader }}
                options (
                    {%- for key, value in options.items() %}
                    `{{ key }}` '{{ value | replace("\\", "\\\\") | replace("'", "\\'") }}'{{ "," if not loop.last }}
                    {%- endfor %}
                )
            {%- endcall -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}
