{{ config(materialized='table', tags=['evaluation']) }}

with

runs as (

    select * from {{ ref('stg_evaluation__runs') }}

),

diagnostics as (

    select * from {{ ref('stg_evaluation__llm_diagnostics') }}

),

latest_runs as (

    select
        split,
        max(created_at) as latest_created_at

    from runs
    group by split

),

-- the controls every pick is compared with: the same run, split and category
controls as (

    select
        run_id,
        split,
        category,
        max(case when pick_method = 'memory_first' then pick_accuracy end) as memory_first_accuracy,
        max(case when pick_method = 'memory_random' then pick_accuracy end) as memory_random_accuracy

    from diagnostics
    group by run_id, split, category

),

final as (

    select
        diagnostics.run_id,
        runs.created_at,
        runs.run_label,
        runs.preset,
        diagnostics.split,
        runs.created_at = latest_runs.latest_created_at as is_latest_run,
        diagnostics.category,
        diagnostics.pick_method,
        diagnostics.n_targets,
        diagnostics.n_with_candidates,
        diagnostics.mean_candidates,
        diagnostics.candidate_recall,
        diagnostics.pick_accuracy,
        diagnostics.pick_accuracy_se,
        diagnostics.pick_accuracy_given_recall,
        diagnostics.pick_accuracy - controls.memory_first_accuracy as pick_accuracy_minus_memory_first,
        diagnostics.pick_accuracy - controls.memory_random_accuracy as pick_accuracy_minus_memory_random

    from diagnostics
    inner join runs
        on diagnostics.run_id = runs.run_id
    inner join latest_runs
        on diagnostics.split = latest_runs.split
    left join controls
        on diagnostics.run_id = controls.run_id
        and diagnostics.split = controls.split
        and diagnostics.category = controls.category

)

select * from final
