{#- Fails on every row for which the SQL expression is false or NULL. -#}
{% test expression_is_true(model, expression) %}

with

checked as (

    select * from {{ model }}

),

final as (

    select * from checked
    where not coalesce({{ expression }}, false)

)

select * from final

{% endtest %}
