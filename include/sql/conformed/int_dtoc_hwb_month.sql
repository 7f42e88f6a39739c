-- Delayed days per HWB area and month, by breakdown (agency / reason / care type) and category.
-- Council rows only: England and the special rows (residents of Wales, Scotland, outside GB)
-- belong to no HWB area. A council with "-" for the month (abolished: Poole, April 2019) has
-- null days and adds nothing.
create or replace table int_dtoc_hwb_month as
with council_rows as (
    select dtoc.*, area_map.hwb_code
    from stg_dtoc_la as dtoc
    join int_area_map as area_map on area_map.area_code = dtoc.council_code
    where dtoc.row_type = 'council'
      and dtoc.measure = 'delayed_days'
),
aggregated as (
    select
        hwb_code,
        period_start,
        breakdown,
        category,
        sum(value)                          as delayed_days,
        count(value)                        as councils_reporting,
        list(distinct source_sha256)        as source_files
    from council_rows
    group by hwb_code, period_start, breakdown, category
)
select * from aggregated;
