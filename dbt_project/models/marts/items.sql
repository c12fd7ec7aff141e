with

catalog as (

    select * from {{ ref('stg_raw__items') }}

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
        attributes

    from catalog

)

select * from final
