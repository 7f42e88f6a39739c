-- Every parsed version of every release of the DTOC national time series (tidy schema:
-- docs/data-contract.md#dtoc_national). `_period` is the release (its last month); each
-- release holds every month from August 2010.
create table if not exists land_dtoc_national (
    period        date    not null,
    status        varchar,
    published     varchar,
    revised       varchar,
    breakdown     varchar not null,
    care_type     varchar not null,
    reason        varchar not null,
    agency        varchar not null,
    measure       varchar not null,
    value         double,
    -- lineage
    _period       varchar not null,
    _version      integer not null,
    _sha256       varchar not null,
    _loaded_at    timestamptz not null
);
