{{ config(materialized='view', tags=['evaluation']) }}

{#- The evaluation assets create eval_metrics on their first run; until then this view is empty, so the
    project builds on a fresh warehouse. -#}
{%- set metrics_table = source('evaluation', 'eval_metrics') -%}

with

source as (

    {% if execute and load_relation(metrics_table) is none %}
    select
        cast(null as varchar) as run_id,
        cast(null as timestamp) as created_at,
        cast(null as varchar) as method,
        cast(null as varchar) as category,
        cast(null as varchar) as slice,
        cast(null as varchar) as metric,
        cast(null as double) as value,
        cast(null as integer) as n_users,
        cast(null as varchar) as split
    where false
    {% else %}
    select * from {{ metrics_table }}
    {% endif %}

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
