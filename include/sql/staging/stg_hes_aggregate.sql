-- Published-style monthly hospital activity aggregate, latest version of each month.
create or replace view stg_hes_aggregate as
with source as (
    select * from land_hes_aggregate
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
