-- Confidence intervals used by the marts. z is the two-sided normal quantile (1.959964 for 95%).
-- Checked in tests against independent implementations (scipy, PHStatsMethods), not against themselves.

-- Byar's approximation to the exact Poisson interval for an observed count o, with the
-- exact interval below 10 events (Fingertips practice). Exact limits for 0..9 events come
-- from ref_poisson_exact, computed with scipy at the configured confidence level when the
-- reference tables are loaded (DuckDB has no chi-squared quantile function).
create or replace macro byar_lower(o, z) as
    case when o is null then null
         when o < 10 then (select e.lower_limit from ref_poisson_exact as e where e.observed = round(o))
         else o * power(1 - 1 / (9.0 * o) - z / (3 * sqrt(o)), 3) end;

create or replace macro byar_upper(o, z) as
    case when o is null then null
         when o < 10 then (select e.upper_limit from ref_poisson_exact as e where e.observed = round(o))
         else (o + 1) * power(1 - 1 / (9.0 * (o + 1)) + z / (3 * sqrt(o + 1)), 3) end;

-- Wilson score interval for a proportion k / n.
create or replace macro wilson_lower(k, n, z) as
    case when n is null or n = 0 or k is null then null
         else ((2 * k + z * z) - z * sqrt(z * z + 4 * k * (1 - k / n))) / (2 * (n + z * z)) end;

create or replace macro wilson_upper(k, n, z) as
    case when n is null or n = 0 or k is null then null
         else ((2 * k + z * z) + z * sqrt(z * z + 4 * k * (1 - k / n))) / (2 * (n + z * z)) end;

-- The financial year a date falls in, as published: '2017-18'.
create or replace macro financial_year(d) as
    case when month(d) >= 4 then year(d)::varchar || '-' || lpad(((year(d) + 1) % 100)::varchar, 2, '0')
         else (year(d) - 1)::varchar || '-' || lpad((year(d) % 100)::varchar, 2, '0') end;

create or replace macro financial_year_start(d) as
    case when month(d) >= 4 then year(d) else year(d) - 1 end;

-- Whether an area-month has the figure a value needs: a numerator (or, for the p90 length of
-- stay, the percentile) and its denominator. A count without its population (a new area's
-- code before its first estimate loads) has no figure: England and windows leave it out.
create or replace macro has_figure(numerator, denominator, value_override) as
    (numerator is not null or value_override is not null) and denominator is not null;
