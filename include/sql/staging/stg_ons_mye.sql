-- ONS mid-year estimates, latest version of each mid-year, single years of age (90 = 90+).
create or replace view stg_ons_mye as
with source as (
    -- a version an operator rejected (carewatch reject: table rejected_versions) is left out
    -- while the rejection stands, so the period's latest other version is used
    select land.*
    from land_ons_mye as land
    anti join rejected_versions as rejected
        on rejected.source = 'ons_mye' and rejected.period = land._period and rejected.version = land._version
        and rejected.withdrawn_at is null
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
