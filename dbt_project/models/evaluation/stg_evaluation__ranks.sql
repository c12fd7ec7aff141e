{{ config(materialized='view', tags=['evaluation']) }}

{#- eval_ranks exists once the evaluation assets have run; until then this view is empty. -#}
with

source as (

    {{ source_or_empty(source('evaluation', 'eval_ranks'), [
        ('run_id', 'varchar'),
        ('method', 'varchar'),
        ('user_id', 'varchar'),
        ('category', 'varchar'),
        ('target_item_id', 'varchar'),
        ('rank', 'integer'),
        ('target_id', 'varchar'),
        ('split', 'varchar'),
        ('is_cold_item', 'boolean'),
    ]) }}

),

final as (

    select
        cast(run_id as varchar) as run_id,
        cast(split as varchar) as split,
        cast(method as varchar) as method,
        cast(target_id as varchar) as target_id,
        cast(user_id as varchar) as user_id,
        cast(category as varchar) as category,
        cast(target_item_id as varchar) as target_item_id,
        cast(is_cold_item as boolean) as is_cold_item,
        cast(rank as integer) as target_rank

    from source

)

select * from final
