-- Every council code a source may carry -> the health and wellbeing board area it belongs to.
-- 2017 councils map to their HWB (City of London -> Hackney, Isles of Scilly -> Cornwall);
-- recodes and aliases (Barnsley E08000016 / E08000038) map to the same HWB; successors of boundary
-- changes (BCP, the new Dorset, the Northamptonshire unitaries...) are HWB areas of their own.
create or replace table int_area_map as
with councils_2017 as (
    select council_code as area_code, hwb_code
    from ref_councils
),
recoded as (
    select changes.new_code as area_code, councils_2017.hwb_code
    from ref_code_changes as changes
    join councils_2017 on councils_2017.area_code = changes.old_code
    where changes.change in ('recode', 'alias')
),
successors as (
    select distinct new_code as area_code, new_code as hwb_code
    from ref_code_changes
    where change not in ('recode', 'alias')
      and new_code not in (select area_code from councils_2017)
)
select * from councils_2017
union
select * from recoded
union
select * from successors;
