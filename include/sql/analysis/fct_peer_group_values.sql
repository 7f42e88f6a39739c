-- Peer-group aggregates from the same data as fct_metric_values: for every area, its group of
-- similar areas (peer_group: the nearest neighbours, the area itself excluded) pooled per
-- period and metric. Counts and rates pool numerators and denominators (value = sum of
-- numerators / sum of denominators x multiplier, as England is pooled); the 90th-percentile
-- length of stay has no numerator, so its peer value is the denominator-weighted mean of the
-- peers' values (the documented approximation the rolling figures also use). A peer without
-- a value (suppressed, or no figure) leaves the aggregate null rather than partial: value,
-- numerator and denominator alike; peers_reporting counts the peers that have a value. The
-- group of a period is its members in int_peer_group_members (peers abolished or made by a
-- boundary change leave or join it). Built by the analysis step (peer groups are computed
-- there), after fct_metric_values.
create or replace table fct_peer_group_values as
with joined as (
    select members.area_code, members.peer_code, members.group_size, facts.*  exclude (area_code)
    from int_peer_group_members as members
    join fct_metric_values as facts
      on facts.area_code = members.peer_code
     and facts.period_type = members.period_type
     and facts.period_start = members.period_start
),
pooled as (
    select
        area_code,
        period_type,
        period_start,
        any_value(period_end)                                 as period_end,
        metric_id,
        count(value)                                          as peers_reporting,
        any_value(group_size)                                 as group_size,
        -- every peer of the group has a row, a value and a denominator
        count(*) = any_value(group_size) and count(value) = count(*)
            and count(denominator) = count(*)                 as complete,
        count(numerator) = count(*)                           as with_numerators,
        -- summed in peer order: a float sum's last bits depend on the order (a rerun that read
        -- the rows in another order gave values 1e-11 apart), and a rerun must give identical marts
        sum(numerator order by peer_code)                     as numerator,
        sum(denominator order by peer_code)                   as denominator,
        sum(value * denominator order by peer_code)           as weighted_values,
        any_value(multiplier)                                 as multiplier
    from joined
    group by area_code, period_type, period_start, metric_id
)
select
    area_code,
    period_type,
    period_start,
    period_end,
    metric_id,
    split_part(metric_id, '__', 1)                            as base_metric_id,
    peers_reporting,
    group_size,
    case when complete then numerator end                     as numerator,
    case when complete then denominator end                   as denominator,
    multiplier,
    case
        when not complete then null
        when with_numerators then numerator / nullif(denominator, 0) * multiplier
        else weighted_values / nullif(denominator, 0)
    end                                                       as value
from pooled
