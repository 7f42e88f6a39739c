-- ASCOF measures, latest version of each year, council rows of the headline disaggregation.
create or replace view stg_ascof as
with source as (
    -- a version an operator rejected (carewatch reject: table rejected_versions) is left out
    -- while the rejection stands, so the period's latest other version is used
    select land.*
    from land_ascof as land
    anti join rejected_versions as rejected
        on rejected.source = 'ascof' and rejected.period = land._period and rejected.version = land._version
        and rejected.withdrawn_at is null
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
