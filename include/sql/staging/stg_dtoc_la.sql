-- DTOC LA Type B, the latest published version of each month; delayed days only.
create or replace view stg_dtoc_la as
with source as (
    -- a version an operator rejected (carewatch reject: table rejected_versions) is left out
    -- while the rejection stands, so the period's latest other version is used
    select land.*
    from land_dtoc_la as land
    anti join rejected_versions as rejected
        on rejected.source = 'dtoc_la' and rejected.period = land._period and rejected.version = land._version
        and rejected.withdrawn_at is null
),
latest_version as (
    select *
    from source
    qualify _version = max(_version) over (partition by _period)
),
renamed as (
    select
        -- ids
        period::date                 as period_start,
        row_type,
        la_code,
        ons_code,
        la_name,
        council_code,
        -- breakdown of the figure
        breakdown,
        category,
        measure,
        -- numerics
        value                        as value,
        -- lineage
        status                       as publication_status,
        _version                     as source_version,
        _sha256                      as source_sha256
    from latest_version
)
select * from renamed;
