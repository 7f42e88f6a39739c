-- Hospital metrics of people aged 65+ from a record-level HES admitted patient care extract.
-- Reads the view `hes_apc_episodes` (carewatch.hospital: the Parquet extract with the needed
-- columns in canonical types) in one scan, no self-join. Parameter: $lookup, the district ->
-- HWB lookup CSVs (current and former district codes). Definitions (docs/data-contract.md, ../shared/domain.md):
--   emergency admission: finished episode (epistat 3), first of its spell (epiorder 1),
--     emergency admission method, age 65-120 (infant codes 7001-7007 are not ages), in the
--     month of admidate;
--   discharge: finished episode with a disdate, emergency admission method, age 65-120,
--     not a death (dismeth 4 died, 5 stillbirth), in the month of disdate;
--   length of stay: disdate - admidate in whole days; 90th percentile by nearest rank (the
--     smallest stay with at least 90% of the area's stays at or below it), over discharges
--     with an admidate (one without is still counted as a discharge);
--   weekend discharge: disdate on a Saturday or Sunday;
--   area: resladst_ons through the district -> HWB lookup (a code maps to the HWB area that
--     contained it while the code was in use); no match -> 'UNMAPPED' (counted).
-- Work per episode is kept to two small aggregations by district (percentiles cannot be
-- combined across districts, so stays are counted per length and the percentile is read
-- from the cumulative counts per HWB); areas are mapped on the aggregated rows.
with

lookup as (
    select district_code, hwb_code
    from read_csv($lookup, header = true, all_varchar = true, union_by_name = true)
),

episodes as (
    select resladst_ons, admidate, disdate, dismeth, epiorder
    from hes_apc_episodes
    where epistat = 3
      and admimeth in ('21', '22', '23', '24', '25', '28', '2A', '2B', '2C', '2D')
      and startage between 65 and 120
),

-- Both branches read the filtered episodes from the one scan: DuckDB materializes the
-- `episodes` CTE once (the plan's CTE / CTE Scan operators) and each branch reads that
-- (`not materialized` would scan the Parquet file twice, and measured slower). A discharge's
-- own condition is a WHERE of its branch, evaluated on the filtered episodes only; admissions
-- count first episodes with a FILTER.
admissions_by_district as (
    select
        resladst_ons,
        year(admidate) * 12 + month(admidate) - 1            as month_index,
        count(*) filter (where epiorder = 1)                 as emergency_admissions
    from episodes
    group by all
),

stays_by_district as (
    select
        resladst_ons,
        year(disdate) * 12 + month(disdate) - 1              as month_index,
        disdate - admidate                                   as los_days,
        count(*)                                             as discharges,
        count(*) filter (where isodow(disdate) >= 6)         as weekend_discharges
    from episodes
    where disdate is not null and coalesce(dismeth, 0) not in (4, 5)
    group by all
),

admissions as (
    select
        coalesce(lookup.hwb_code, 'UNMAPPED')                as area_code,
        month_index,
        sum(emergency_admissions)::bigint                    as emergency_admissions
    from admissions_by_district
    left join lookup on lookup.district_code = admissions_by_district.resladst_ons
    group by all
    having sum(emergency_admissions) > 0
),

stays as (
    select
        coalesce(lookup.hwb_code, 'UNMAPPED')                as area_code,
        month_index,
        los_days,
        sum(discharges)::bigint                              as discharges,
        sum(weekend_discharges)::bigint                      as weekend_discharges
    from stays_by_district
    left join lookup on lookup.district_code = stays_by_district.resladst_ons
    group by all
),

stays_cumulative as (
    select
        *,
        sum(discharges) filter (where los_days is not null)
            over (partition by area_code, month_index order by los_days)            as at_or_below,
        sum(discharges) filter (where los_days is not null)
            over (partition by area_code, month_index)                              as with_stay
    from stays
),

discharges as (
    select
        area_code,
        month_index,
        sum(discharges)::bigint                                                     as discharges,
        -- nearest rank: at_or_below >= ceil(0.9 * with_stay), in integers
        min(los_days) filter (where los_days is not null and 10 * at_or_below >= 9 * with_stay)
                                                                                    as los_p90_days,
        sum(weekend_discharges)::bigint                                             as weekend_discharges
    from stays_cumulative
    group by all
)

select
    area_code,
    make_date(month_index // 12, month_index % 12 + 1, 1)   as period,
    coalesce(admissions.emergency_admissions, 0)            as emergency_admissions,
    coalesce(discharges.discharges, 0)                      as discharges,
    discharges.los_p90_days,
    coalesce(discharges.weekend_discharges, 0)              as weekend_discharges
from admissions
full outer join discharges using (area_code, month_index)
order by period, area_code = 'UNMAPPED', area_code
