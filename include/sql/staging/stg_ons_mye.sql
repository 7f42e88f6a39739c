-- ONS mid-year estimates, latest version of each mid-year, single years of age (90 = 90+).
create or replace view stg_ons_mye as
with source as (
    select * from land_ons_mye
),
latest_version as (
    select *
    from source
    qualify _version = max(_version) over (partition by _period)
)
select
    mid_year,
    area_code,
    area_name,
    age,
    population,
    _version as source_version,
    _sha256  as source_sha256
from latest_version;
