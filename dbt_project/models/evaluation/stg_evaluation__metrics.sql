{{ config(materialized='view', tags=['evaluation']) }}

{#- eval_metrics exists once the evaluation assets have run; until then this view is empty. -#}
with

source as (

    {{ source_or_empty(source('evaluation', 'eval_metrics'), [
        ('run_id', 'varchar'),
        ('created_at', 'timestamp'),
        ('method', 'varchar'),
        ('category', 'varchar'),
        ('slice', 'varchar'),
        ('metric', 'varchar'),
        ('value', 'double'),
        ('n_users', 'integer'),
        ('split', 'varchar'),
    ]) }}

),

final as (

    select
        cast(run_id as varchar) as run_id,
        cast(created_at as timestamp) as created_at,
        cast(split as varchar) as split,
        cast(method as varchar) as method,
        cast(category as varchar) as category,
        cast(slice as varchar) as slice,
        cast(metric as varchar) as metric,
        cast(value as double) as metric_value,
        cast(n_users as integer) as n_users

    from source

)

select * from final
