{#-
    Bad input never disappears: every row of each raw file is either clean (staging) or in
    quarantine, never both. Returns one row per source whose counts do not add up or whose rows
    appear on both sides.
-#}
with

raw_events as (

    {{ read_raw_rows(source('raw', 'events')) }}

),

raw_items as (

    {{ read_raw_rows(source('raw', 'items')) }}

),

clean_events as (

    select source_row_number from {{ ref('stg_raw__events') }}

),

clean_items as (

    select source_row_number from {{ ref('stg_raw__items') }}

),

quarantined as (

    select source, source_row_number from {{ ref('quarantine') }}

),

raw_counts as (

    select 'events' as source, count(*) as n_raw from raw_events
    union all
    select 'items' as source, count(*) as n_raw from raw_items

),

clean_counts as (

    select 'events' as source, count(*) as n_clean from clean_events
    union all
    select 'items' as source, count(*) as n_clean from clean_items

),

quarantine_counts as (

    select source, count(*) as n_quarantined
    from quarantined
    group by source

),

rows_on_both_sides as (

    select 'events' as source, count(*) as n_both
    from clean_events
    inner join quarantined
        on quarantined.source = 'events'
        and clean_events.source_row_number = quarantined.source_row_number
    union all
    select 'items' as source, count(*) as n_both
    from clean_items
    inner join quarantined
        on quarantined.source = 'items'
        and clean_items.source_row_number = quarantined.source_row_number

),

final as (

    select
        raw_counts.source,
        raw_counts.n_raw,
        clean_counts.n_clean,
        coalesce(quarantine_counts.n_quarantined, 0) as n_quarantined,
        rows_on_both_sides.n_both

    from raw_counts
    inner join clean_counts
        on raw_counts.source = clean_counts.source
    inner join rows_on_both_sides
        on raw_counts.source = rows_on_both_sides.source
    left join quarantine_counts
        on raw_counts.source = quarantine_counts.source
    where raw_counts.n_raw <> clean_counts.n_clean + coalesce(quarantine_counts.n_quarantined, 0)
        or rows_on_both_sides.n_both > 0

)

select * from final
