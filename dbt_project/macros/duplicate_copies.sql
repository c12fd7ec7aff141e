{#-
    The CTEs ``first_copies``, ``conflicting_ids`` and ``duplicates_flagged`` over ``relation`` (a CTE
    with ``source_row_number``, ``is_json_object`` and ``content_fingerprint``, see row_fingerprint):
    ``duplicates_flagged`` is every row of ``relation`` plus ``is_extra_copy`` (an identical row came
    earlier in the file) and ``has_conflicting_duplicate`` (another row has the same ``key`` and other
    contents). Both raw sources are de-duplicated this way; the caller continues the WITH list after it.
-#}
{% macro duplicate_copies_flagged(relation, key) -%}
-- Duplicates are found with aggregates rather than windows: both scan the rows once, but a
-- window over a million rows sorts every partition, which costs several times more.
first_copies as (

    select
        {{ key }},
        content_fingerprint,
        min(source_row_number) as first_source_row_number

    from {{ relation }}
    group by {{ key }}, content_fingerprint

),

conflicting_ids as (

    -- one {{ key }}, several contents: nothing says which is right, so every copy is rejected
    select {{ key }}

    from {{ relation }}
    where {{ key }} is not null
    group by {{ key }}
    having count(distinct content_fingerprint) > 1

),

duplicates_flagged as (

    select
        {{ relation }}.*,
        -- copies after the first of an identical row (file order decides which copy is kept);
        -- rows that did not parse are all different as far as anyone can tell
        {{ relation }}.is_json_object
            and {{ relation }}.source_row_number <> first_copies.first_source_row_number as is_extra_copy,
        conflicting_ids.{{ key }} is not null as has_conflicting_duplicate

    from {{ relation }}
    inner join first_copies
        on {{ relation }}.{{ key }} is not distinct from first_copies.{{ key }}
        and {{ relation }}.content_fingerprint = first_copies.content_fingerprint
    left join conflicting_ids
        on {{ relation }}.{{ key }} = conflicting_ids.{{ key }}

)
{%- endmacro %}
