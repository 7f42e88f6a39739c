-- Warehouse check: every health and wellbeing board area has every dashboard metric for every
-- period the metric has that lies entirely within the area's existence. Validated by
-- expectations/metric_completeness.json.
--
-- An area exists from the boundary change that made it (BCP E06000058 and the Dorset unitary
-- E06000059 from 1 April 2019; a 2017 area always has) until the day before the boundary
-- change that ended it (Bournemouth, Poole and Dorset county until 31 March 2019); recodes and
-- aliases keep the area (Buckinghamshire E10000002 stays the HWB's code). A period covers
-- period_start to period_end, except a rolling year, named by its last month, which begins 11
-- months before period_start: BCP is expected a month from April 2019, a financial year from
-- 2019-20, a rolling 12 months from the one ending March 2020; Bournemouth a rolling 12 months
-- until the one ending March 2019.
with boundary_changes as (
    select old_code, new_code, effective_from
    from ref_code_changes
    where change not in ('recode', 'alias')
),
made as (
    select new_code as area_code, min(effective_from) as exists_from from boundary_changes group by new_code
),
ended as (
    select old_code as area_code, min(effective_from) as exists_until from boundary_changes group by old_code
),
areas as (
    select area_code, made.exists_from, ended.exists_until
    from (select hwb_code as area_code from ref_hwb_areas union select area_code from made) as codes
    left join made using (area_code)
    left join ended using (area_code)
),
periods as (
    select distinct metric_id, period_type, period_start, period_end,
           period_start - case when period_type = 'rolling_12m' then interval 11 month
                               else interval 0 month end as window_start
    from fct_metric_values
    where metric_id = base_metric_id
),
expected as (
    select periods.metric_id, periods.period_type, periods.period_start, areas.area_code
    from periods
    join areas
      on (areas.exists_from is null or areas.exists_from <= periods.window_start)
     and (areas.exists_until is null or periods.period_end < areas.exists_until)
),
present as (
    select metric_id, period_type, period_start, area_code
    from fct_metric_values
    where metric_id = base_metric_id and area_code <> 'E92000001' and value is not null
)
select
    expected.metric_id,
    expected.period_type,
    strftime(expected.period_start, '%Y-%m-%d') as period_start,
    count(*) as areas_expected,
    count(present.area_code) as areas_present,
    count(*) - count(present.area_code) as areas_missing,
    string_agg(case when present.area_code is null then expected.area_code end, ' ' order by expected.area_code) as missing_areas
from expected
left join present using (metric_id, period_type, period_start, area_code)
group by all
order by all
