{{ config(materialized='view', tags=['evaluation']) }}

{#- The evaluation assets create eval_runs on their first run; until then this view is empty, so the
    project builds on a fresh warehouse. -#}
{%- set runs_table = source('evaluation', 'eval_runs') -%}

with

source as (

    {% if execute and load_relation(runs_table) is none %}
    select
        cast(null as varchar) as run_id,
        cast(null as timestamp) as created_at,
        cast(null as varchar) as label,
        cast(null as varchar) as preset,
        cast(null as varchar) as split,
        cast(null as json) as config,
        cast(null as varchar[]) as methods,
        cast(null as integer) as n_targets
    where false
    {% else %}
    select * from {{ runs_table }}
    {% endif %}

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
