{{ config(materialized='table', tags=['evaluation']) }}

with

runs as (

    select * from {{ ref('stg_evaluation__runs') }}

),

metrics as (

    select * from {{ ref('stg_evaluation__metrics') }}

),

ranks as (

    select * from {{ ref('stg_evaluation__ranks') }}

),

latest_runs as (

    select
        split,
        max(created_at) as latest_created_at

    from runs
    group by split

),

pivoted as (

    select
        run_id,
        split,
        method,
        category,
        slice,
        max(n_users) as n_users,
        max(case when metric = 'recall@10' then metric_value end) as recall_at_10,
        max(case when metric = 'ndcg@10' then metric_value end) as ndcg_at_10,
        max(case when metric = 'mrr' then metric_value end) as mrr,
        max(case when metric = 'mrr@10' then metric_value end) as mrr_at_10,
        max(case when metric = 'coverage@10' then metric_value end) as coverage_at_10,
        max(case when metric = 'serendipity@10' then metric_value end) as serendipity_at_10

    from metrics
    group by run_id, split, method, category, slice

),

slices as (

    select 'all' as slice
    union all
    select 'cold_start' as slice
    union all
    select 'warm' as slice

),

-- every ranked target once per slice it belongs to, per category and again under 'all'
ranks_in_slices as (

    select
        ranks.run_id,
        ranks.method,
        ranks.category,
        slices.slice,
        ranks.target_rank

    from ranks
    inner join slices
        on slices.slice = 'all'
        or (slices.slice = 'cold_start' and ranks.is_cold_item)
        or (slices.slice = 'warm' and not ranks.is_cold_item)

),

ranks_with_overall as (

    select * from ranks_in_slices
    union all
    select
        run_id,
        method,
        'all' as category,
        slice,
        target_rank
    from ranks_in_slices

),

rank_summary as (

    select
        run_id,
        method,
        category,
        slice,
        avg(case when target_rank is null then 0.0 else 1.0 end) as ranked_share,
        percentile_cont(0.5) within group (order by target_rank) as median_rank

    from ranks_with_overall
    group by run_id, method, category, slice

),

final as (

    select
        pivoted.run_id,
        runs.created_at,
        runs.run_label,
        runs.preset,
        pivoted.split,
        runs.created_at = latest_runs.latest_created_at as is_latest_run,
        pivoted.method,
        pivoted.category,
        pivoted.slice,
        cast(pivoted.n_users as integer) as n_users,
        pivoted.n_users / nullif(cast(whole.n_users as double), 0) as share_of_users,
        pivoted.recall_at_10,
        pivoted.ndcg_at_10,
        pivoted.mrr,
        pivoted.mrr_at_10,
        pivoted.coverage_at_10,
        pivoted.serendipity_at_10,
        rank_summary.ranked_share,
        rank_summary.median_rank

    from pivoted
    inner join runs
        on pivoted.run_id = runs.run_id
    inner join latest_runs
        on pivoted.split = latest_runs.split
    left join pivoted as whole
        on pivoted.run_id = whole.run_id
        and pivoted.method = whole.method
        and pivoted.category = whole.category
        and whole.slice = 'all'
    left join rank_summary
        on pivoted.run_id = rank_summary.run_id
        and pivoted.method = rank_summary.method
        and pivoted.category = rank_summary.category
        and pivoted.slice = rank_summary.slice

)

select * from final
