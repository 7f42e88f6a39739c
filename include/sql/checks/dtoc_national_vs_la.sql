-- Cross-source check: the LA tables' England row (residence-based: every council plus the
-- Wales / Scotland / outside-GB rows) against the national time series (provider-based),
-- month by month. Validated by expectations/dtoc_national_vs_la.json (tolerances there).
with la as (
    select period_start, value as la_england_days
    from stg_dtoc_la
    where row_type = 'england' and breakdown = 'agency' and category = 'total' and measure = 'delayed_days'
),
national as (
    select period_start, value as national_days
    from stg_dtoc_national
    where breakdown = 'agency' and agency = 'total' and care_type = 'total' and reason = 'total'
      and measure = 'delayed_days'
)
select
    strftime(la.period_start, '%Y-%m') as period,
    la.la_england_days,
    national.national_days,
    (la.la_england_days - national.national_days) / national.national_days as relative_difference
from la
join national using (period_start)
order by la.period_start
