-- Every parsed version of every published-style monthly hospital activity aggregate (docs/data-contract.md#hes_aggregate).
create table if not exists land_hes_aggregate (
    period      date not null,
    area_code   varchar not null,
    area_name   varchar,
    measure     varchar not null,
    value       double,
    _period     varchar not null,
    _version    integer not null,
    _sha256     varchar not null,
    _loaded_at  timestamptz not null
);
