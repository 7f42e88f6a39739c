-- ASCOF 2B(1) and 2B(2) per HWB area and financial year: headline numerator and denominator.
-- An HWB made of two councils (Hackney with City of London, Cornwall with Isles of Scilly)
-- sums its councils; if any of them is suppressed the HWB's figure is null, not partial.
create or replace table int_ascof_hwb_year as
with headline as (
    select ascof.*, area_map.hwb_code
    from stg_ascof as ascof
    join int_area_map as area_map on area_map.area_code = ascof.council_code
    where ascof.geo_level ilike 'council%'
      and ascof.measure_group in ('2B1', '2B2')
      and ascof.measure_code = ascof.measure_group
      and ascof.measure_type in ('numerator', 'denominator')
),
aggregated as (
    select
        hwb_code,
        financial_year,
        measure_group,
        case when count(value) filter (where measure_type = 'numerator')
                  = count(*) filter (where measure_type = 'numerator')
             then sum(value) filter (where measure_type = 'numerator') end      as numerator,
        case when count(value) filter (where measure_type = 'denominator')
                  = count(*) filter (where measure_type = 'denominator')
             then sum(value) filter (where measure_type = 'denominator') end    as denominator,
        list(distinct source_sha256)                                             as source_files
    from headline
    group by hwb_code, financial_year, measure_group
)
select * from aggregated;
