-- Population of each HWB area by mid-year and single year of age (90 = 90+), from the estimate
-- the build read: the analysis forms peer groups from this table, not from the live staging
-- view, so a population estimate loaded (or rejected) after the build cannot reach the
-- analysis of marts built without it.
create or replace table int_population_age_hwb as
select
    mye.mid_year,
    area_map.hwb_code,
    mye.age,
    sum(mye.population)::bigint     as population,
    any_value(mye.source_sha256)    as source_sha256
from stg_ons_mye as mye
join int_area_map as area_map on area_map.area_code = mye.area_code
group by mye.mid_year, area_map.hwb_code, mye.age;
