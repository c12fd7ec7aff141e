{#- The columns the items mart names; every other raw column is kept in `attributes`. -#}
{%- set named_columns = [
    'item_id', 'parent_id', 'title', 'category', 'subcategory', 'brand', 'color', 'size',
    'season', 'holiday', 'occasion', 'price', 'first_seen', 'image_path'
] -%}

with

source as (

    {{ read_raw_rows(source('raw', 'items'), multiline_csv=true) }}

),

fields as (

    select
        source_row_number,
        raw_row,
        is_json_object,
        {{ json_text_fields('raw_row', named_columns) }} as raw_text,
        {{ json_extra_fields('raw_row', named_columns) }} as attributes

    from source

),

trimmed as (

    select
        source_row_number,
        raw_row,
        is_json_object,
        {%- for column in named_columns %}
        {{ clean_text('raw_text.' ~ column) }} as {{ column }}_text,
        {%- endfor %}
        attributes

    from fields

),

typed as (

    select
        source_row_number,
        raw_row,
        is_json_object,
        item_id_text as item_id,
        coalesce(parent_id_text, item_id_text) as parent_id,
        title_text as title,
        category_text as category,
        subcategory_text as subcategory,
        brand_text as brand,
        color_text as color,
        size_text as size,
        season_text as season,
        holiday_text as holiday,
        occasion_text as occasion,
        {{ parse_finite_double('price_text') }} as price,
        {{ parse_date('first_seen_text') }} as first_seen,
        image_path_text as image_path,
        attributes,
        price_text,
        first_seen_text

    from trimmed

),

-- Materialized: three CTEs below read it, and inlining it would parse the raw JSON three times.
fingerprinted as {{ cte_materialized() }} (

    select
        *,
        {{ row_fingerprint([
            'item_id', 'parent_id', 'title', 'category', 'subcategory', 'brand', 'color', 'size',
            'season', 'holiday', 'occasion', 'price', 'first_seen', 'image_path', 'attributes'
        ]) }} as content_fingerprint

    from typed

),

{{ duplicate_copies_flagged('fingerprinted', 'item_id') }},

final as (

    select
        source_row_number,
        item_id,
        parent_id,
        title,
        category,
        subcategory,
        brand,
        color,
        size,
        season,
        holiday,
        occasion,
        price,
        first_seen,
        image_path,
        attributes,
        raw_row,
        nullif(concat_ws('; ',
            case when not is_json_object then 'unparseable row' end,
            case when item_id is null then 'missing item_id' end,
            case when title is null then 'missing title' end,
            case when category is null then 'missing category' end,
            case when price_text is not null and price is null then 'unparseable price' end,
            case when first_seen_text is not null and first_seen is null then 'unparseable first_seen' end,
            case when has_conflicting_duplicate then 'duplicate item_id with different content' end,
            case when is_extra_copy then 'exact duplicate' end
        ), '') as rejection_reason

    from duplicates_flagged

)

select * from final
