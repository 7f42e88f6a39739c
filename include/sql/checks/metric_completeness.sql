-- Warehouse check: every health and wellbeing board area in force has every dashboard metric
-- for every period the metric has. Validated by expectations/metric_completeness.json.
with hwb_2017 as (
    select hwb_code from ref_hwb_areas
),
-- HWB areas in force on a date: the 2017 areas not yet replaced, plus successors in force
boundary_changes as (
    select old_code, new_code, effective_from
    from ref_code_changes
    where change not in ('recode', 'alias')
),
periods as (
    select distinct metric_id, period_type, period_start
    from fct_metric_values
    where metric_id = base_metric_id
),
in_force as (
    select periods.metric_id, periods.period_type, periods.period_start, hwb_2017.hwb_code as area_code
    from periods cross join hwb_2017
    where not exists (
        select 1 from boundary_changes c where c.old_code = hwb_2017.hwb_code and c.effective_from <= periods.period_start
    )
    union
    select periods.metric_id, periods.period_type, periods.period_start, c.new_code
    from periods join boundary_changes c on c.effective_from <= periods.period_start
),
present as (
    select metric_id, period_type, period_start, area_code
    from fct_metric_values
    where metric_id = base_metric_id and area_code <> 'E92000001' and value is not null
)
select
    in_force.metric_id,
    in_force.period_type,
    strftime(in_force.period_start, '%Y-%m-%d') as period_start,
    count(*) as areas_expected,
    count(present.area_code) as areas_present,
    count(*) - count(present.area_code) as areas_missing,
    string_agg(case when present.area_code is null then in_force.area_code end, ' ' order by in_force.area_code) as missing_areas
from in_force
left join present using (metric_id, period_type, period_start, area_code)
group by all
order by all
