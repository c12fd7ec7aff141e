{#-
    Every raw row of a source as (source_row_number, raw_row, is_json_object), whatever the
    file format.

    The raw landing may be Parquet (typed), CSV or JSON lines; reading every row as one JSON
    object makes the staging models independent of the format and of which optional columns
    a file has: a missing column reads as NULL, and every value arrives as text that staging
    casts with try_cast. CSV is read with all_varchar so that one malformed value cannot make
    the reader fail or guess a type for the whole column.

    source_row_number is 1-based in file order: Parquet reports it exactly; for CSV and JSON it
    is the scan order, which DuckDB keeps because insertion order is preserved.

    Structural damage: a JSON line that does not parse becomes a NULL raw_row, and a line that
    is an array or a scalar is not an object (is_json_object is false); both are quarantined
    instead of failing the read; a CSV row with fewer fields than the header is padded with
    NULLs. A CSV file that is not CSV at all (e.g. an unterminated quote) still fails the read,
    with DuckDB's message naming the file and line.

    multiline_csv: read a CSV file with one thread so that a quoted value may hold line breaks
    (a free-text product description): DuckDB's parallel reader refuses them together with the
    NULL padding above. A catalog is small enough for one thread; the events log is not, and
    keeps the parallel reader.
-#}
{% macro read_raw_rows(relation, multiline_csv=false) -%}
    {{ return(adapter.dispatch('read_raw_rows', 'fashionrec')(relation, multiline_csv)) }}
{%- endmacro %}

{% macro duckdb__read_raw_rows(relation, multiline_csv) -%}
    {%- set location = (relation.external or '') | trim -%}
    {%- if location.startswith("'") and location.endswith("'") -%}
        {%- set location = location[1:-1] -%}
    {%- endif -%}
    {%- set lowered = location | lower -%}
    {%- if not location -%}
        {#- a source configured as a table in the database rather than a file -#}
        select
            row_number() over () as source_row_number,
            to_json(raw_source) as raw_row,
            true as is_json_object
        from {{ relation }} as raw_source
    {%- elif lowered.endswith('.parquet') -%}
        select
            file_row_number + 1 as source_row_number,
            to_json(struct_pack(*columns(* exclude (file_row_number)))) as raw_row,
            true as is_json_object
        from read_parquet('{{ location }}', file_row_number = true)
    {%- elif lowered.endswith('.csv') -%}
        select
            row_number() over () as source_row_number,
            to_json(raw_source) as raw_row,
            true as is_json_object
        from read_csv(
            '{{ location }}',
            header = true,
            delim = ',',
            quote = '"',
            escape = '"',
            all_varchar = true,
            null_padding = true,
            parallel = {{ 'false' if multiline_csv else 'true' }}
        ) as raw_source
    {%- elif lowered.endswith('.jsonl') or lowered.endswith('.json') -%}
        select
            row_number() over () as source_row_number,
            json as raw_row,
            coalesce(json_type(json) = 'OBJECT', false) as is_json_object
        from read_json_objects(
            '{{ location }}',
            format = '{{ "newline_delimited" if lowered.endswith(".jsonl") else "auto" }}',
            ignore_errors = true
        )
    {%- else -%}
        {{ exceptions.raise_compiler_error(
            "Raw file " ~ location ~ " has an unsupported extension: expected .parquet, .csv, .jsonl or .json"
        ) }}
    {%- endif -%}
{%- endmacro %}


{#-
    Spark reads a Parquet file inline, with the file's own row number (_metadata.row_index). CSV and
    JSON lines go through a temporary view of the session (register_raw_files, run at the start of
    every dbt command), because Spark's SQL cannot give a CSV reader options inline; their row
    number is the scan order (monotonically_increasing_id grows with the file offset). Models
    reading raw files are tables on Spark: a permanent view may not stand on a temporary one.
    Timestamps are written with microseconds: to_json's default format would cut them to milliseconds.
    Row numbers are bigint on every path, as DuckDB's are (Spark's row_number() is an int).
-#}
{% macro spark__read_raw_rows(relation, multiline_csv) -%}
    {%- set location = raw_file_location(relation) -%}
    {%- set as_json = "to_json(struct(raw_source.*), map('ignoreNullFields', 'false', "
                      ~ "'timestampFormat', \"yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX\"))" -%}
    {%- if location.lower().endswith('.parquet') -%}
        select
            raw_source._metadata.row_index + 1 as source_row_number,
            {{ as_json }} as raw_row,
            true as is_json_object
        from parquet.`{{ location | replace('`', '``') }}` as raw_source
    {%- elif not location or location.lower().endswith('.csv') -%}
        {#- a CSV file's view; or a table in the catalog, or a unit test's input -#}
        select
            cast(row_number() over (order by monotonically_increasing_id()) as bigint) as source_row_number,
            {{ as_json }} as raw_row,
            true as is_json_object
        from {{ raw_file_view(relation) if location else relation }} as raw_source
    {%- else -%}
        {#- JSON lines: one text row per line; DuckDB's reader skips blank lines, so this does too -#}
        select
            cast(row_number() over (order by monotonically_increasing_id()) as bigint) as source_row_number,
            case when get_json_object(value, '$') is not null then value end as raw_row,
            coalesce(startswith(ltrim(value), '{') and from_json(value, 'map<string, string>') is not null, false)
                as is_json_object
        from {{ raw_file_view(relation) }}
        where trim(value) <> ''
    {%- endif -%}
{%- endmacro %}
