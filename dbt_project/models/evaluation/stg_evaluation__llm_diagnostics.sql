{{ config(materialized='view', tags=['evaluation']) }}

{#- eval_llm_diagnostics exists once the evaluation assets have run; until then this view is empty. -#}
with

source as (

    {{ source_or_empty(source('evaluation', 'eval_llm_diagnostics'), [
        ('run_id', 'varchar'),
        ('split', 'varchar'),
        ('method', 'varchar'),
        ('category', 'varchar'),
        ('n_targets', 'integer'),
        ('n_with_candidates', 'integer'),
        ('mean_candidates', 'double'),
        ('candidate_recall', 'double'),
        ('pick_accuracy', 'double'),
        ('pick_accuracy_se', 'double'),
        ('pick_accuracy_given_recall', 'double'),
    ]) }}

),

final as (

    select
        cast(run_id as varchar) as run_id,
        cast(split as varchar) as split,
        cast(method as varchar) as pick_method,
        cast(category as varchar) as category,
        cast(n_targets as integer) as n_targets,
        cast(n_with_candidates as integer) as n_with_candidates,
        cast(mean_candidates as double) as mean_candidates,
        cast(candidate_recall as double) as candidate_recall,
        cast(pick_accuracy as double) as pick_accuracy,
        cast(pick_accuracy_se as double) as pick_accuracy_se,
        cast(pick_accuracy_given_recall as double) as pick_accuracy_given_recall

    from source

)

select * from final
