-- ASCOF measures, latest version of each year, council rows of the headline disaggregation.
create or replace view stg_ascof as
with source as (
    select * from land_ascof
),
latest_version as (
    select *
    from source
    qualify _version = max(_version) over (partition by _period)
)
select
    year                              as financial_year,
    council_code,
    geo_level,
    measure_group,
    measure_code,
    disaggregation,
    lower(measure_type)               as measure_type,
    value,
    suppression,
    _version                          as source_version,
    _sha256                           as source_sha256
from latest_version;
