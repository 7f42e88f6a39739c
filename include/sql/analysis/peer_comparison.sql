-- Each area against its similar areas and England, on the values the league table ranks
-- (league_values, handed over by the analysis step: for each area and metric the value of
-- the rolling 12 months ending in period_start, or for annual metrics the lagged financial
-- year: value_period_type / value_period_start), of each month the analysis reports (one, or
-- each month ranked since the last report when a late DTOC month held them back). One row per
-- month, area and metric with a value:
--   peer_value     the group's pooled value for that period (fct_peer_group_values: null when
--                  a member has no value or no denominator);
--   england_value  England's value for that period;
--   rank_in_group  1 + the members with a value better than the area's, in the metric's
--                  direction (ties share the best rank), of group_size = 1 + the members with
--                  a value (int_peer_group_members: the same membership as the peer value);
--   vs_england, vs_peers: the significance macro (include/sql/macros/comparison.sql).
-- The months computed replace their rows; the rows of months reported by earlier analyses stay
-- (each month's report reads its own month, and a rerun after a catch-up run, which computes
-- only the latest month, must not leave the catch-up's earlier months without a comparison).
create or replace temp table peer_comparison_computed as
with own as (
    select league.*, metrics.direction = 'low' as low_is_better
    from league_values as league
    join ref_metrics as metrics on metrics.metric_id = split_part(league.metric_id, '__', 1)
    where league.area_code <> 'E92000001' and league.value is not null
),
england as (
    select period_start, metric_id, value_period_type, value_period_start, value
    from league_values
    where area_code = 'E92000001'
),
ranked as (
    select
        own.period_start,
        own.area_code,
        own.metric_id,
        count(facts.value)                                          as peers_with_value,
        count(*) filter (where case when own.low_is_better then facts.value < own.value
                                    else facts.value > own.value end) as peers_better
    from own
    join int_peer_group_members as members
      on members.area_code = own.area_code
     and members.period_type = own.value_period_type
     and members.period_start = own.value_period_start
    join fct_metric_values as facts
      on facts.area_code = members.peer_code
     and facts.metric_id = own.metric_id
     and facts.period_type = own.value_period_type
     and facts.period_start = own.value_period_start
    where facts.value is not null
    group by own.period_start, own.area_code, own.metric_id
)
select
    own.period_start,
    own.area_code,
    own.metric_id,
    own.value_period_type,
    own.value_period_start,
    own.value,
    peers.value                                                     as peer_value,
    england.value                                                   as england_value,
    coalesce(ranked.peers_better, 0) + 1                            as rank_in_group,
    coalesce(ranked.peers_with_value, 0) + 1                        as group_size,
    significance(own.ci_lower, own.ci_upper, england.value, own.low_is_better) as vs_england,
    significance(own.ci_lower, own.ci_upper, peers.value, own.low_is_better)   as vs_peers
from own
left join ranked
  on ranked.period_start = own.period_start and ranked.area_code = own.area_code and ranked.metric_id = own.metric_id
left join fct_peer_group_values as peers
  on peers.area_code = own.area_code
 and peers.metric_id = own.metric_id
 and peers.period_type = own.value_period_type
 and peers.period_start = own.value_period_start
left join england
  on england.period_start = own.period_start
 and england.metric_id = own.metric_id
 and england.value_period_type = own.value_period_type
 and england.value_period_start = own.value_period_start
order by own.period_start, own.metric_id, own.area_code;

create table if not exists peer_comparison as select * from peer_comparison_computed limit 0;
delete from peer_comparison where period_start in (select period_start from league_values);
insert into peer_comparison by name select * from peer_comparison_computed order by period_start, metric_id, area_code;
drop table peer_comparison_computed;
