-- DTOC national time series (provider-based): every month of the latest loaded release
-- (the latest version of the latest release), so revisions of earlier months are picked up.
create or replace view stg_dtoc_national as
with source as (
    -- a version an operator rejected (carewatch reject: table rejected_versions) is left out
    -- while the rejection stands, so the period's latest other version is used
    select land.*
    from land_dtoc_national as land
    anti join rejected_versions as rejected
        on rejected.source = 'dtoc_national' and rejected.period = land._period and rejected.version = land._version
        and rejected.withdrawn_at is null
),
latest_release as (
    select *
    from source
    qualify _period = max(_period) over ()
        and _version = max(_version) over (partition by _period)
),
renamed as (
    select
        -- ids
        period::date                 as period_start,
        -- breakdown of the figure
        breakdown,
        care_type,
        reason,
        agency,
        measure,
        -- numerics
        value,
        -- lineage
        _period                      as release,
        status                       as publication_status,
        _version                     as source_version,
        _sha256                      as source_sha256
    from latest_release
)
select * from renamed;
