-- Population of each HWB area by mid-year: all ages, aged 18+ and aged 65+.
create or replace table int_population_hwb as
select
    hwb_code,
    mid_year,
    sum(population)::bigint                              as population_all_ages,
    (sum(population) filter (where age >= 18))::bigint   as population_18plus,
    (sum(population) filter (where age >= 65))::bigint   as population_65plus,
    any_value(source_sha256)                             as source_sha256
from int_population_age_hwb
group by hwb_code, mid_year;
