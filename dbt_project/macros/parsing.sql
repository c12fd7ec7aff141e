{#- Text-to-type parsers used by staging: NULL when the text does not parse, never an error. -#}

{#-
    A UTC timestamp (without time zone) from text. An explicit offset ('+02:00', 'Z') is honoured;
    text without one is read as UTC (the profile sets TimeZone to UTC).
-#}
{% macro parse_utc_timestamp(text) -%}
    {{ return(adapter.dispatch('parse_utc_timestamp', 'fashionrec')(text)) }}
{%- endmacro %}

{% macro duckdb__parse_utc_timestamp(text) -%}
    timezone('UTC', try_cast({{ text }} as timestamptz))
{%- endmacro %}

{#- Spark: casts are lenient (ANSI mode off, which dbt-spark sets), so a cast is a try_cast. -#}
{% macro spark__parse_utc_timestamp(text) -%}
    cast({{ text }} as timestamp)
{%- endmacro %}


{#- A finite double from text (NaN and infinities do not count as prices or positions). -#}
{% macro parse_finite_double(text) -%}
    {{ return(adapter.dispatch('parse_finite_double', 'fashionrec')(text)) }}
{%- endmacro %}

{% macro duckdb__parse_finite_double(text) -%}
    case when isfinite(try_cast({{ text }} as double)) then try_cast({{ text }} as double) end
{%- endmacro %}

{% macro spark__parse_finite_double(text) -%}
    case
        when not isnan(cast({{ text }} as double)) and abs(cast({{ text }} as double)) < double('Infinity')
            then cast({{ text }} as double)
    end
{%- endmacro %}


{#- A date from text, also accepting a timestamp ('2024-03-01 00:00:00'). -#}
{% macro parse_date(text) -%}
    {{ return(adapter.dispatch('parse_date', 'fashionrec')(text)) }}
{%- endmacro %}

{% macro duckdb__parse_date(text) -%}
    coalesce(try_cast({{ text }} as date), try_cast(try_cast({{ text }} as timestamp) as date))
{%- endmacro %}

{% macro spark__parse_date(text) -%}
    coalesce(cast({{ text }} as date), cast(cast({{ text }} as timestamp) as date))
{%- endmacro %}


{#- A boolean from text: true/false, t/f, 1/0, yes/no in any case; NULL otherwise. -#}
{% macro parse_boolean(text) -%}
    {{ return(adapter.dispatch('parse_boolean', 'fashionrec')(text)) }}
{%- endmacro %}

{% macro duckdb__parse_boolean(text) -%}
    try_cast({{ text }} as boolean)
{%- endmacro %}

{#- Spark's cast takes the same words as DuckDB's (true/false, t/f, y/n, yes/no, 1/0). -#}
{% macro spark__parse_boolean(text) -%}
    cast({{ text }} as boolean)
{%- endmacro %}


{#- Trimmed text, NULL when empty: CSV, JSON and Parquet disagree on how a missing value looks. -#}
{% macro clean_text(text) -%}
    nullif(trim({{ text }}), '')
{%- endmacro %}


{#- An integer from text holding a whole number ('3', '3.0', 3); NULL for '2.5', 'abc' or overflow. -#}
{% macro parse_integer(text) -%}
    {{ return(adapter.dispatch('parse_integer', 'fashionrec')(text)) }}
{%- endmacro %}

{% macro duckdb__parse_integer(text) -%}
    try_cast(
        case when try_cast({{ text }} as double) = floor(try_cast({{ text }} as double)) then try_cast({{ text }} as double) end
        as integer
    )
{%- endmacro %}

{#- Spark's lenient cast would clamp an out-of-range double to the int range: the bounds are checked. -#}
{% macro spark__parse_integer(text) -%}
    cast(
        case
            when cast({{ text }} as double) = floor(cast({{ text }} as double))
                and cast({{ text }} as double) between -2147483648 and 2147483647
                then cast({{ text }} as double)
        end
        as int
    )
{%- endmacro %}
