-- Who is in each area's group of similar areas in each period: peer_group (the nearest
-- neighbours, the area itself excluded) for every period_type and period_start of
-- fct_metric_values, less the peers that did not exist then. A peer abolished by a boundary
-- change (peer_group.peer_until) leaves the group from that day; a peer made by one
-- (peer_group.peer_from: BCP in the Dorset unitary's group) joins it from the first period
-- it existed throughout: a rolling year's period_start is its last month, so its window
-- begins 11 months earlier. group_size: how many members the group has in that period.
-- The one membership rule of fct_peer_group_values and peer_comparison, written with them in
-- the analysis step's transaction (peer groups are computed there), after fct_metric_values.
create or replace table int_peer_group_members as
with periods as (
    select distinct period_type, period_start from fct_metric_values
)
select
    peer_group.area_code,
    peer_group.peer_code,
    periods.period_type,
    periods.period_start,
    count(*) over (partition by peer_group.area_code, periods.period_type, periods.period_start) as group_size
from peer_group
cross join periods
where (peer_group.peer_until is null or periods.period_start < peer_group.peer_until)
  and (peer_group.peer_from is null
       or periods.period_start - case when periods.period_type = 'rolling_12m' then interval 11 month
                                      else interval 0 month end >= peer_group.peer_from)
