-- Hospital activity of people aged 65+ per HWB area and month, one column per measure.
create or replace table int_hes_hwb_month as
with pivoted as (
    select
        area_map.hwb_code,
        hes.period_start,
        sum(value) filter (where measure = 'emergency_admissions_65plus')  as emergency_admissions_65plus,
        sum(value) filter (where measure = 'discharges_65plus')            as discharges_65plus,
        max(value) filter (where measure = 'los_p90_days')                 as los_p90_days,
        sum(value) filter (where measure = 'weekend_discharges_65plus')    as weekend_discharges_65plus,
        list(distinct source_sha256)                                       as source_files
    from stg_hes_aggregate as hes
    join int_area_map as area_map on area_map.area_code = hes.hwb_code
    group by area_map.hwb_code, hes.period_start
)
select * from pivoted;
