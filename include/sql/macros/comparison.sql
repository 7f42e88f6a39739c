-- Is a value with confidence interval [lower, upper] significantly better or worse than a
-- comparator (England, the peer group)? "better" / "worse" when the interval lies wholly on
-- one side of it, in the metric's direction; "not significant" when it contains it; "not
-- compared" without an interval or a comparator (e.g. a peer group with a suppressed peer).
create or replace macro significance(lower, upper, comparator, low_is_better) as
    case when comparator is null or lower is null or upper is null then 'not compared'
         when lower > comparator then case when low_is_better then 'worse' else 'better' end
         when upper < comparator then case when low_is_better then 'better' else 'worse' end
         else 'not significant' end;
