-- Hospital metrics of people aged 65+ from a record-level HES admitted patient care extract.
-- One scan of the extract (only the needed columns), no self-join. Parameters:
--   $extract  path of the Parquet extract;   $lookup  district -> HWB lookup CSV
--   $from_month, $to_month  first days of the first and last month reported (inclusive)
-- Definitions (docs/data-contract.md, ../shared/domain.md):
--   emergency admission: finished episode (epistat 3), first of its spell (epiorder 1),
--     emergency admission method, age 65-120 (infant codes 7001-7007 are not ages), in the
--     month of admidate;
--   discharge: finished episode with a disdate, emergency admission method, age 65-120,
--     not a death (dismeth 4 died, 5 stillbirth), in the month of disdate;
--   length of stay: disdate - admidate in whole days; 90th percentile by nearest rank;
--   weekend discharge: disdate on a Saturday or Sunday;
--   area: resladst_ons through the district -> HWB lookup; no match -> 'UNMAPPED' (counted).
with

lookup as (
    select district_code, hwb_code
    from read_csv($lookup, header = true, all_varchar = true)
),

episodes as (
    select admidate, disdate, dismeth, epiorder, resladst_ons
    from read_parquet($extract)
    where epistat = 3
      and admimeth in ('21', '22', '23', '24', '25', '28', '2A', '2B', '2C', '2D')
      and startage between 65 and 120
),

mapped as (
    select episodes.*, coalesce(lookup.hwb_code, 'UNMAPPED') as area_code
    from episodes
    left join lookup on lookup.district_code = episodes.resladst_ons
),

admissions as (
    select area_code, date_trunc('month', admidate)::date as period, count(*) as emergency_admissions
    from mapped
    where epiorder = 1
    group by all
),

discharges as (
    select
        area_code,
        date_trunc('month', disdate)::date                        as period,
        count(*)                                                  as discharges,
        quantile_disc(date_diff('day', admidate, disdate), 0.9)   as los_p90_days,
        count(*) filter (where dayofweek(disdate) in (0, 6))      as weekend_discharges
    from mapped
    where disdate is not null
      and coalesce(dismeth, 0) not in (4, 5)
    group by all
),

combined as (
    select
        area_code,
        period,
        coalesce(admissions.emergency_admissions, 0)  as emergency_admissions,
        coalesce(discharges.discharges, 0)            as discharges,
        discharges.los_p90_days,
        coalesce(discharges.weekend_discharges, 0)    as weekend_discharges
    from admissions
    full outer join discharges using (area_code, period)
)

select *
from combined
where period between $from_month and $to_month
order by period, area_code = 'UNMAPPED', area_code
