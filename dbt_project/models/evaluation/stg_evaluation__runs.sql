{{ config(materialized='view', tags=['evaluation']) }}

{#- eval_runs exists once the evaluation assets have run; until then this view is empty. -#}
with

source as (

    {{ source_or_empty(source('evaluation', 'eval_runs'), [
        ('run_id', 'varchar'),
        ('created_at', 'timestamp'),
        ('label', 'varchar'),
        ('preset', 'varchar'),
        ('split', 'varchar'),
        ('config', 'json'),
        ('methods', 'varchar[]'),
        ('n_targets', 'integer'),
    ]) }}

),

final as (

    select
        cast(run_id as varchar) as run_id,
        cast(created_at as timestamp) as created_at,
        coalesce(cast(label as varchar), '') as run_label,
        cast(preset as varchar) as preset,
        cast(split as varchar) as split,
        cast(config as json) as config,
        cast(methods as varchar[]) as methods,
        cast(n_targets as integer) as n_targets

    from source

)

select * from final
