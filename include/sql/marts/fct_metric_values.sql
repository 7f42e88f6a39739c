-- The metrics warehouse: one row per area x period x metric.
--   area_code     HWB area code, or E92000001 for England (sum of the HWB areas; ASCOF: the
--                 publication's England row, see ascof_published_england)
--   period_type   'month', 'rolling_12m' (12 months ending at period_start's month) or 'financial_year'
--   numerator / denominator / multiplier: value = numerator / denominator * multiplier
--     (multiplier: the metric's, config/metrics.yaml via ref_metrics)
--     (rates: denominator is population x days (DTOC) or population (admissions; over a
--      rolling or financial year the average population, so the rate is per year);
--      p90 length of stay has no numerator: denominator = discharges, value = the percentile)
--   ci_lower / ci_upper: Byar (rates) or Wilson (proportions) at ref_settings.ci_z
--   source_files: sha256 of every raw file behind the value (join raw_manifest for URL and path)
create or replace table fct_metric_values as
with

months as (
    select distinct hwb_code, period_start from int_dtoc_hwb_month
    union
    select distinct hwb_code, period_start from int_hes_hwb_month
),

-- The population each month's rates use (config/metrics.yaml: population.mid_year_rule).
month_population as (
    select months.hwb_code, months.period_start,
           population.population_18plus, population.population_65plus,
           population.source_sha256 as population_file
    from months
    asof left join int_population_hwb as population
        on population.hwb_code = months.hwb_code
       and financial_year_start(months.period_start) >= population.mid_year
),

dtoc_monthly as (
    select
        dtoc.hwb_code                                              as area_code,
        dtoc.period_start,
        case
            when dtoc.breakdown = 'agency' and dtoc.category = 'total'
                then 'delayed_days_per_day_per_100k_18plus'
            when dtoc.breakdown = 'agency'
                then 'delayed_days_per_day_per_100k_18plus__' || dtoc.category
            when dtoc.breakdown = 'reason' and dtoc.category <> 'total'
                then 'delayed_days_per_day_per_100k_18plus__reason_' || dtoc.category
        end                                                        as metric_id,
        dtoc.delayed_days                                          as numerator,
        pop.population_18plus * day(last_day(dtoc.period_start))   as denominator,
        null::double                                               as value_override,
        list_append(dtoc.source_files, pop.population_file)        as source_files
    from int_dtoc_hwb_month as dtoc
    join month_population as pop using (hwb_code, period_start)
),

hes_monthly as (
    select hwb_code as area_code, period_start,
           'emergency_admissions_65plus_per_100k' as metric_id,
           emergency_admissions_65plus as numerator, pop.population_65plus as denominator,
           null::double as value_override,
           list_append(hes.source_files, pop.population_file) as source_files
    from int_hes_hwb_month as hes join month_population as pop using (hwb_code, period_start)
    union all
    select hwb_code, period_start, 'los_p90_days_65plus',
           null, discharges_65plus, los_p90_days, source_files
    from int_hes_hwb_month
    union all
    select hwb_code, period_start, 'weekend_discharge_share',
           weekend_discharges_65plus, discharges_65plus, null, source_files
    from int_hes_hwb_month
),

monthly as (
    select * from dtoc_monthly where metric_id is not null
    union all
    select * from hes_monthly
),

-- England: the sum of the HWB areas that have the figure (weighted mean for the percentile);
-- an area with a missing (suppressed) numerator leaves its denominator out too, and one with
-- no population yet (a new code before its first estimate) its numerator.
with_england as (
    select * from monthly
    union all
    select 'E92000001', period_start, metric_id,
           sum(numerator) filter (where has_figure(numerator, denominator, value_override)),
           sum(denominator) filter (where has_figure(numerator, denominator, value_override)),
           sum(value_override * denominator) filter (where value_override is not null)
               / nullif(sum(denominator) filter (where value_override is not null), 0),
           list_distinct(flatten(list(source_files)))
    from monthly
    group by period_start, metric_id
),

monthly_values as (
    select area_code, 'month' as period_type, period_start, last_day(period_start) as period_end,
           metric_id, numerator, denominator, value_override, source_files
    from with_england
),

-- How a metric's monthly denominators add up over a window (config/metrics.yaml:
-- window_denominator): 'sum' (population x days, discharges) or 'mean' (a population: a year's
-- admissions are divided by the area's average population, not by 12 populations).
window_rule as (
    select metric_id as rule_metric_id, coalesce(window_denominator, 'sum') as window_denominator from ref_metrics
),

-- Rolling 12 months: only where all 12 months have the figure (a suppressed or missing month
-- leaves no value, rather than a rate with one month's numerator missing).
rolling_12m as (
    select area_code, 'rolling_12m' as period_type, period_start, period_end, metric_id,
           numerator,
           case rule.window_denominator when 'mean' then denominator / 12 else denominator end as denominator,
           value_override, source_files
    from (
        select area_code, period_start, last_day(period_start) as period_end, metric_id,
               sum(numerator) over w                                   as numerator,
               sum(denominator) over w                                 as denominator,
               sum(value_override * denominator) over w
                   / nullif(sum(denominator) over w, 0)                as value_override,
               count(*) filter (where has_figure(numerator, denominator, value_override)) over w
                                                                       as months_with_figure,
               list(source_files) over w                               as source_file_lists
        from with_england
        window w as (partition by area_code, metric_id order by period_start
                     range between interval 11 months preceding and current row)
    )
    join window_rule as rule on rule.rule_metric_id = split_part(metric_id, '__', 1)
    cross join lateral (select list_distinct(flatten(source_file_lists)) as source_files)
    where months_with_figure = 12
),

financial_year_months as (
    select area_code, metric_id, financial_year_start(period_start) as fy_start,
           count(*) filter (where has_figure(numerator, denominator, value_override)) as months_with_figure,
           sum(numerator) as numerator, sum(denominator) as denominator,
           sum(value_override * denominator) / nullif(sum(denominator), 0) as value_override,
           list_distinct(flatten(list(source_files))) as source_files
    from with_england
    group by area_code, metric_id, financial_year_start(period_start)
),

ascof_years as (
    select hwb_code as area_code,
           case measure_group when '2B1' then 'reablement_still_at_home_91d_65plus'
                              when '2B2' then 'reablement_offered_65plus' end as metric_id,
           cast(left(financial_year, 4) as integer) as fy_start,
           numerator, denominator, source_files
    from int_ascof_hwb_year
),

-- England: the publication's own England row (it counts the councils whose figures are
-- suppressed); only a year without one falls back to the sum of the areas with both figures.
ascof_published_england as (
    select case measure_group when '2B1' then 'reablement_still_at_home_91d_65plus'
                              when '2B2' then 'reablement_offered_65plus' end as metric_id,
           cast(left(financial_year, 4) as integer) as fy_start,
           any_value(value) filter (where measure_type = 'numerator') as numerator,
           any_value(value) filter (where measure_type = 'denominator') as denominator,
           list(distinct source_sha256) as source_files
    from stg_ascof
    where geo_level ilike 'england'
      and measure_group in ('2B1', '2B2')
      and measure_code = measure_group
      and measure_type in ('numerator', 'denominator')
    group by all
    having count(value) filter (where measure_type = 'numerator') = 1
       and count(value) filter (where measure_type = 'denominator') = 1
),

ascof_summed_england as (
    select metric_id, fy_start,
           sum(numerator) filter (where numerator is not null and denominator is not null) as numerator,
           sum(denominator) filter (where numerator is not null and denominator is not null) as denominator,
           list_distinct(flatten(list(source_files))) as source_files
    from ascof_years
    group by metric_id, fy_start
),

ascof_with_england as (
    select * from ascof_years
    union all
    select 'E92000001', metric_id, fy_start, numerator, denominator, source_files
    from ascof_published_england
    union all
    select 'E92000001', summed.metric_id, summed.fy_start, summed.numerator, summed.denominator, summed.source_files
    from ascof_summed_england as summed
    anti join ascof_published_england using (metric_id, fy_start)
),

financial_years as (
    select area_code, 'financial_year' as period_type,
           make_date(fy_start, 4, 1) as period_start, make_date(fy_start + 1, 3, 31) as period_end,
           metric_id, numerator,
           case rule.window_denominator when 'mean' then denominator / 12 else denominator end,
           value_override, source_files
    from financial_year_months
    join window_rule as rule on rule.rule_metric_id = split_part(metric_id, '__', 1)
    where months_with_figure = 12
    union all
    select area_code, 'financial_year', make_date(fy_start, 4, 1), make_date(fy_start + 1, 3, 31),
           metric_id, numerator, denominator, null, source_files
    from ascof_with_england
),

all_periods as (
    select * from monthly_values
    union all
    select * from rolling_12m
    union all
    select * from financial_years
),

-- the metric's multiplier and interval method (a breakdown, metric__category, has its base metric's)
with_values as (
    select
        all_periods.*,
        m.metric_id as base_metric_id,
        m.multiplier,
        m.ci_method,
        coalesce(value_override, numerator / nullif(denominator, 0) * m.multiplier) as value
    from all_periods
    join ref_metrics as m on m.metric_id = split_part(all_periods.metric_id, '__', 1)
),

final as (
    select
        -- grain
        v.area_code,
        v.period_type,
        v.period_start,
        v.period_end,
        v.metric_id,
        v.base_metric_id,
        -- numerics
        v.numerator,
        v.denominator,
        v.multiplier,
        v.value,
        case v.ci_method
            when 'byar'   then byar_lower(v.numerator, s.ci_z) / nullif(v.denominator, 0) * v.multiplier
            when 'wilson' then wilson_lower(v.numerator, v.denominator, s.ci_z) * v.multiplier
        end as ci_lower,
        case v.ci_method
            when 'byar'   then byar_upper(v.numerator, s.ci_z) / nullif(v.denominator, 0) * v.multiplier
            when 'wilson' then wilson_upper(v.numerator, v.denominator, s.ci_z) * v.multiplier
        end as ci_upper,
        -- lineage
        list_sort(list_filter(v.source_files, lambda f: f is not null)) as source_files
    from with_values as v
    cross join ref_settings as s
)

select * from final
order by metric_id, period_type, period_start, area_code;
