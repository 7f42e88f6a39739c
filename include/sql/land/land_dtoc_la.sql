-- Every parsed version of every DTOC LA Type B workbook (tidy schema: docs/data-contract.md#dtoc_la).
create table if not exists land_dtoc_la (
    period        date    not null,
    status        varchar,
    published     varchar,
    revised       varchar,
    row_type      varchar not null,
    la_code       varchar,
    ons_code      varchar,
    la_name       varchar,
    council_code  varchar,
    breakdown     varchar not null,
    category      varchar not null,
    measure       varchar not null,
    value         double,
    -- lineage
    _period       varchar not null,
    _version      integer not null,
    _sha256       varchar not null,
    _loaded_at    timestamptz not null
);
