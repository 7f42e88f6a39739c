-- Hospital metrics of people aged 65+ from a record-level HES admitted patient care extract.
-- One scan of the extract (only the needed columns) and one grouped pass; no self-join.
-- Parameters: $extract (Parquet path), $lookup (district -> HWB CSV),
--             $from_month, $to_month (first days of the first and last month reported).
-- Definitions (docs/data-contract.md, ../shared/domain.md):
--   emergency admission: finished episode (epistat 3), first of its spell (epiorder 1),
--     emergency admission method, age 65-120 (infant codes 7001-7007 are not ages), in the
--     month of admidate;
--   discharge: finished episode with a disdate, emergency admission method, age 65-120,
--     not a death (dismeth 4 died, 5 stillbirth), in the month of disdate;
--   length of stay: disdate - admidate in whole days; 90th percentile by nearest rank;
--   weekend discharge: disdate on a Saturday or Sunday;
--   area: resladst_ons through the district -> HWB lookup; no match -> 'UNMAPPED' (counted).
-- The grouped pass keeps, per district, a histogram of lengths of stay by discharge month,
-- from which the nearest-rank percentile is exact (ceil(0.9 n)-th smallest value).
with

lookup as (
    select district_code, hwb_code
    from read_csv($lookup, header = true, all_varchar = true)
),

episodes as (
    select
        resladst_ons,
        epiorder = 1                                                         as is_admission,
        year(admidate) * 12 + month(admidate) - 1                            as admission_month,
        disdate is not null and coalesce(dismeth, 0) not in (4, 5)           as is_discharge,
        year(disdate) * 12 + month(disdate) - 1                              as discharge_month,
        disdate - admidate                                                   as los_days,
        dayofweek(disdate) in (0, 6)                                         as is_weekend
    from read_parquet($extract)
    where epistat = 3
      and admimeth in ('21', '22', '23', '24', '25', '28', '2A', '2B', '2C', '2D')
      and startage between 65 and 120
),

grouped as (
    select
        resladst_ons,
        is_admission,
        admission_month,
        is_discharge,
        case when is_discharge then discharge_month end  as discharge_month,
        case when is_discharge then los_days end         as los_days,
        case when is_discharge then is_weekend end       as is_weekend,
        count(*)                                         as episodes
    from episodes
    where is_admission or is_discharge
    group by all
),

mapped as (
    select coalesce(lookup.hwb_code, 'UNMAPPED') as area_code, grouped.*
    from grouped
    left join lookup on lookup.district_code = grouped.resladst_ons
),

admissions as (
    select area_code, admission_month as month_index, sum(episodes) as emergency_admissions
    from mapped
    where is_admission
    group by all
),

los_histogram as (
    select area_code, discharge_month as month_index, los_days,
           sum(episodes) as discharges,
           sum(episodes) filter (where is_weekend) as weekend_discharges
    from mapped
    where is_discharge
    group by all
),

discharges as (
    select
        area_code,
        month_index,
        any_value(total)                                               as discharges,
        min(los_days) filter (where running >= ceil(0.9 * total))      as los_p90_days,
        coalesce(sum(weekend_discharges), 0)                           as weekend_discharges
    from (
        select *,
               sum(discharges) over (partition by area_code, month_index order by los_days) as running,
               sum(discharges) over (partition by area_code, month_index)                   as total
        from los_histogram
    )
    group by all
),

combined as (
    select
        area_code,
        make_date(month_index // 12, month_index % 12 + 1, 1)          as period,
        coalesce(admissions.emergency_admissions, 0)::bigint           as emergency_admissions,
        coalesce(discharges.discharges, 0)::bigint                     as discharges,
        discharges.los_p90_days::bigint                                as los_p90_days,
        coalesce(discharges.weekend_discharges, 0)::bigint             as weekend_discharges
    from admissions
    full outer join discharges using (area_code, month_index)
)

select *
from combined
where period between $from_month and $to_month
order by period, area_code = 'UNMAPPED', area_code
