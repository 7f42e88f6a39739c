-- Published-style monthly hospital activity aggregate, latest version of each month.
create or replace view stg_hes_aggregate as
with source as (
    -- a version an operator rejected (carewatch reject: table rejected_versions) is left out
    -- while the rejection stands, so the period's latest other version is used
    select land.*
    from land_hes_aggregate as land
    anti join rejected_versions as rejected
        on rejected.source = 'hes_aggregate' and rejected.period = land._period and rejected.version = land._version
        and rejected.withdrawn_at is null
),
latest_version as (
    select *
    from source
    qualify _version = max(_version) over (partition by _period)
)
select
    period::date  as period_start,
    area_code     as hwb_code,
    measure,
    value,
    _version      as source_version,
    _sha256       as source_sha256
from latest_version;
