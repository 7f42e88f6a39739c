-- Population of each HWB area by mid-year: all ages, aged 18+ and aged 65+.
create or replace table int_population_hwb as
with upper_tier as (
    select mye.mid_year, area_map.hwb_code, mye.age, mye.population, mye.source_sha256
    from stg_ons_mye as mye
    join int_area_map as area_map on area_map.area_code = mye.area_code
),
aggregated as (
    select
        hwb_code,
        mid_year,
        sum(population)::bigint                   as population_all_ages,
        (sum(population) filter (where age >= 18))::bigint  as population_18plus,
        (sum(population) filter (where age >= 65))::bigint  as population_65plus,
        any_value(source_sha256)                  as source_sha256
    from upper_tier
    group by hwb_code, mid_year
)
select * from aggregated;
