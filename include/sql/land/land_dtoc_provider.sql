-- Every parsed version of every DTOC provider-level CSV (docs/data-contract.md#dtoc_provider).
create table if not exists land_dtoc_provider (
    period            date not null,
    provider_code     varchar,
    provider_name     varchar,
    commissioner_code varchar,
    la_code           varchar,
    la_name           varchar,
    council_code      varchar,
    care_type         varchar,
    reason            varchar,
    agency            varchar,
    patients_delayed  double,
    delayed_days      double,
    _period           varchar not null,
    _version          integer not null,
    _sha256           varchar not null,
    _loaded_at        timestamptz not null
);
