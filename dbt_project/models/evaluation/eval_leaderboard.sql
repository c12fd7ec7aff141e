{{ config(materialized='table', tags=['evaluation']) }}

with

runs as (

    select * from {{ ref('stg_evaluation__runs') }}

),

metrics as (

    select * from {{ ref('stg_evaluation__metrics') }}

),

-- the leaderboard is the latest run on the test split that wrote metrics
latest_run as (

    select
        runs.run_id,
        runs.created_at,
        runs.run_label,
        runs.preset

    from runs
    where runs.split = 'test'
        and runs.run_id in (select distinct run_id from metrics)
    order by runs.created_at desc, runs.run_id desc
    limit 1

),

pivoted as (

    select
        metrics.run_id,
        metrics.category,
        metrics.method,
        max(metrics.n_users) as n_users,
        max(case when metrics.metric = 'recall@10' then metrics.metric_value end) as recall_at_10,
        max(case when metrics.metric = 'ndcg@10' then metrics.metric_value end) as ndcg_at_10,
        max(case when metrics.metric = 'mrr' then metrics.metric_value end) as mrr,
        max(case when metrics.metric = 'mrr@10' then metrics.metric_value end) as mrr_at_10,
        max(case when metrics.metric = 'coverage@10' then metrics.metric_value end) as coverage_at_10,
        max(case when metrics.metric = 'serendipity@10' then metrics.metric_value end) as serendipity_at_10

    from metrics
    inner join latest_run
        on metrics.run_id = latest_run.run_id
    where metrics.slice = 'all'
    group by metrics.run_id, metrics.category, metrics.method

),

popularity as (

    select
        category,
        ndcg_at_10 as popularity_ndcg_at_10

    from pivoted
    where method = 'popularity'

),

final as (

    select
        pivoted.run_id,
        latest_run.created_at,
        latest_run.run_label,
        latest_run.preset,
        pivoted.category,
        cast(row_number() over (
            partition by pivoted.category
            order by pivoted.ndcg_at_10 desc nulls last, pivoted.recall_at_10 desc nulls last, pivoted.method
        ) as integer) as leaderboard_rank,
        pivoted.method,
        cast(pivoted.n_users as integer) as n_users,
        pivoted.recall_at_10,
        pivoted.ndcg_at_10,
        pivoted.mrr,
        pivoted.mrr_at_10,
        pivoted.coverage_at_10,
        pivoted.serendipity_at_10,
        pivoted.ndcg_at_10 / nullif(popularity.popularity_ndcg_at_10, 0) - 1 as ndcg_at_10_gain_over_popularity

    from pivoted
    inner join latest_run
        on pivoted.run_id = latest_run.run_id
    left join popularity
        on pivoted.category = popularity.category

)

select * from final
