-- Every parsed version of every ONS mid-year estimate workbook (docs/data-contract.md#ons_mye).
create table if not exists land_ons_mye (
    mid_year    integer not null,
    area_code   varchar not null,
    area_name   varchar,
    geography   varchar,
    age         integer not null,
    population  bigint,
    _period     varchar not null,
    _version    integer not null,
    _sha256     varchar not null,
    _loaded_at  timestamptz not null
);
