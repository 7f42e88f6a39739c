-- Every parsed version of every published-style monthly hospital activity aggregate (docs/data-contract.md#hes_aggregate).
create table if not exists land_hes_aggregate (
    period      date not null,
    area_code   varchar not null,
    area_name   varchar,
    measure     varchar not null,
    value       double,
    suppression varchar,
    _period     varchar not null,
    _version    integer not null,
    _sha256     varchar not null,
    _loaded_at  timestamptz not null
);
-- a landing table made before the suppression marker was kept gains it (its rows: null)
alter table land_hes_aggregate add column if not exists suppression varchar;
