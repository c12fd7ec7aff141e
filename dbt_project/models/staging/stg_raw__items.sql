with

checked_items as (

    select * from {{ ref('base_raw__items') }}

),

final as (

    select
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
        source_row_number

    from checked_items
    where rejection_reason is null

)

select * from final
