-- Every parsed version of every ASCOF measures CSV (docs/data-contract.md#ascof).
create table if not exists land_ascof (
    year            varchar not null,
    geo_code        varchar,
    geo_name        varchar,
    geo_level       varchar,
    ons_code        varchar,
    council_code    varchar,
    measure_group   varchar,
    measure_code    varchar,
    disaggregation  varchar,
    measure_type    varchar,
    value           double,
    suppression     varchar,
    _period         varchar not null,
    _version        integer not null,
    _sha256         varchar not null,
    _loaded_at      timestamptz not null
);
