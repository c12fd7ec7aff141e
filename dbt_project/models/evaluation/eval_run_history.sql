{{ config(materialized='table', tags=['evaluation']) }}

with

runs as (

    select * from {{ ref('stg_evaluation__runs') }}

),

metrics as (

    select * from {{ ref('stg_evaluation__metrics') }}

),

-- each method's headline figures of a run: every category, every target
overall as (

    select
        run_id,
        method,
        max(n_users) as n_users,
        max(case when metric = 'recall@10' then metric_value end) as recall_at_10,
        max(case when metric = 'ndcg@10' then metric_value end) as ndcg_at_10,
        max(case when metric = 'mrr' then metric_value end) as mrr,
        max(case when metric = 'mrr@10' then metric_value end) as mrr_at_10,
        max(case when metric = 'coverage@10' then metric_value end) as coverage_at_10,
        max(case when metric = 'serendipity@10' then metric_value end) as serendipity_at_10

    from metrics
    where category = 'all' and slice = 'all'
    group by run_id, method

),

joined as (

    select
        runs.run_id,
        runs.created_at,
        runs.run_label,
        runs.preset,
        runs.split,
        overall.method,
        overall.n_users,
        overall.recall_at_10,
        overall.ndcg_at_10,
        overall.mrr,
        overall.mrr_at_10,
        overall.coverage_at_10,
        overall.serendipity_at_10

    from overall
    inner join runs
        on overall.run_id = runs.run_id

),

-- runs of one method compare only on the same data (preset) and split
final as (

    select
        run_id,
        created_at,
        run_label,
        preset,
        split,
        method,
        cast(row_number() over method_runs as integer) as run_number,
        cast(n_users as integer) as n_users,
        recall_at_10,
        ndcg_at_10,
        mrr,
        mrr_at_10,
        coverage_at_10,
        serendipity_at_10,
        lag(run_id) over method_runs as previous_run_id,
        recall_at_10 - lag(recall_at_10) over method_runs as recall_at_10_change,
        ndcg_at_10 - lag(ndcg_at_10) over method_runs as ndcg_at_10_change

    from joined
    window method_runs as (partition by preset, split, method order by created_at, run_id)

)

select * from final
