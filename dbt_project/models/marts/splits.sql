with

sequences as (

    select * from {{ ref('user_sequences') }}

),

purchases as (

    select
        event_id as target_id,
        user_id,
        item_id as target_item_id,
        category,
        ts as target_ts,
        seq_no,
        cast(row_number() over (partition by user_id order by seq_no) as integer) as purchase_no,
        cast(count(*) over (partition by user_id) as integer) as n_purchases

    from sequences
    where action = 'purchase'

),

assigned as (

    select
        *,
        case
            when purchase_no = n_purchases then 'test'
            when purchase_no = n_purchases - 1 then 'valid'
            else 'train'
        end as split

    from purchases

),

-- Everything a model may see while training: each user's events up to their last train target.
train_cutoffs as (

    select
        user_id,
        max(seq_no) as last_train_seq_no

    from assigned
    where split = 'train'
    group by user_id

),

train_vocabulary as (

    select distinct sequences.item_id

    from sequences
    inner join train_cutoffs
        on sequences.user_id = train_cutoffs.user_id
        and sequences.seq_no <= train_cutoffs.last_train_seq_no
    where sequences.item_id is not null

),

final as (

    select
        assigned.target_id,
        assigned.user_id,
        assigned.target_item_id,
        assigned.category,
        assigned.target_ts,
        assigned.seq_no,
        assigned.purchase_no,
        assigned.n_purchases,
        assigned.split,
        train_vocabulary.item_id is null as is_cold_item

    from assigned
    left join train_vocabulary
        on assigned.target_item_id = train_vocabulary.item_id

)

select * from final
