"""Run the benchmarks; print ONE JSON document on stdout and write bench/results/latest.json.

    python -m bench.run [--uri URI] [--only codec,backup_restore,memory,dashboard,drill,increment,scale,embedded_scale]
                        [--quick]

Without ``--uri`` a private embedded server (memory engine) is started and
stopped; the scale figures use a second one on a cached SQLite data dir
(``bench/scale_data.py``, built once under ``bench/cache/``). Progress goes
to stderr. Targets are reported, not asserted (docs/PERFORMANCE.md explains
each figure).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path

from bench import (codec_bench, dashboard_bench, db_bench, dedup_bench, drill_bench, embedded_scale_bench,
                   increment_bench, memory_bench, offsite_bench, scale_bench)
from bench.common import log, memory_server

FIGURES = ("codec", "backup_restore", "memory", "dashboard", "offsite", "dedup", "drill", "increment", "scale",
           "embedded_scale")
TARGETS = {  # key: (comparison, limit)
    "codec_encode_vs_extjson": ("<=", 0.5),
    "codec_decode_vs_extjson": ("<=", 0.5),
    "backup_vs_floor": ("<=", 1.3),
    "restore_replace_vs_raw": ("<=", 1.5),
    "restore_merge_vs_raw": ("<=", 1.5),
    "backup_rss_growth": ("<=", 1.10),
    "restore_rss_growth": ("<=", 1.10),
    "scale_documents": (">=", 100000),
    "scale_backup_s_per_1000": ("<=", 1.0),
    "scale_backup_rss_growth": ("<=", 1.15),
    "scale_restore_rss_growth": ("<=", 1.15),
    "scale_compare_rss_growth": ("<=", 1.5),
    "scale_peak_rss_mb": ("<=", 500),
    "scale_restore_s_per_1000": ("<=", 2.0),
    "compare_page_rerender_s": ("<=", 1.0),
    "increment_stored_vs_one_full_gzip": ("<=", 2.0),
    "increment_restore_dry_run_vs_full": ("<=", 1.5),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--uri", default=os.environ.get("BENCH_MONGODB_URI"),
                   help="MongoDB URI (default: start a private embedded memory server)")
    p.add_argument("--only", default=",".join(FIGURES), help=f"comma-separated subset of {', '.join(FIGURES)}")
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke run, not for the record)")
    p.add_argument("--out", default=str(Path(__file__).with_name("results") / "latest.json"))
    args = p.parse_args(argv)
    only = [f.strip() for f in args.only.split(",") if f.strip()]
    unknown = set(only) - set(FIGURES)
    if unknown:
        p.error(f"unknown figures {sorted(unknown)}")
    q = args.quick
    sizes = {"codec_equipment_documents": 300 if q else 2000, "codec_wide_documents": 60 if q else 300,
             "backup_restore_documents": 200 if q else 1000, "memory_small_documents": 100 if q else 300,
             "memory_factor": 10, "dashboard_backups": 50 if q else 500,
             "offsite_documents": 200 if q else 1000, "drill_documents": 200 if q else 1000,
             "increment_documents": 2000 if q else 50_000, "increment_rounds": 6 if q else 24,
             # scale: Equipment documents (large = 10 x small), wide documents, 4 collections for the
             # parallel backup, restore sizes with writes (embedded memory server; --uri: the large size)
             "scale": {"large": 5000 if q else 100_000, "small": 500 if q else 10_000, "wide": 300 if q else 10_000,
                       "parallel": [4, 300 if q else 5000]},
             "scale_restore_sizes": [200, 400] if q else [250, 500, 1000, 2000]}

    result: dict = {
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
        "database": "given --uri" if args.uri else "embedded memory server (mongoeco)",
        "sizes": sizes, "errors": {},
    }
    t0 = time.perf_counter()
    server = nullcontext(args.uri) if args.uri else memory_server()
    with server as uri:
        import pymongo

        client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=10000)
        steps = {
            "codec": lambda: codec_bench.run(sizes["codec_equipment_documents"], sizes["codec_wide_documents"]),
            "backup_restore": lambda: db_bench.run(client, sizes["backup_restore_documents"]),
            "memory": lambda: memory_bench.run(client, uri, sizes["memory_small_documents"], sizes["memory_factor"]),
            "dashboard": lambda: dashboard_bench.run(client, sizes["dashboard_backups"]),
            "offsite": lambda: offsite_bench.run(client, sizes["offsite_documents"]),
            "dedup": lambda: dedup_bench.run(client),
            "drill": lambda: drill_bench.run(client, sizes["drill_documents"]),
            # its own server on a data dir seeded through the engine (not run with --uri)
            "increment": lambda: {} if args.uri else increment_bench.run(sizes["increment_documents"],
                                                                         sizes["increment_rounds"]),
            "scale": lambda: scale_bench.run(None if args.uri else uri, args.uri, sizes["scale"],
                                             sizes["scale_restore_sizes"]),
            # the embedded default itself (its own server, from the CLI): not run with --uri
            "embedded_scale": lambda: {} if args.uri else embedded_scale_bench.run(sizes["scale"]),
        }
        for name in only:
            log(f"== {name}")
            t = time.perf_counter()
            try:
                result.update(steps[name]())
            except Exception as exc:  # one broken figure must not hide the others
                traceback.print_exc()
                result["errors"][name] = f"{type(exc).__name__}: {exc}"
            result[f"{name}_bench_s"] = round(time.perf_counter() - t, 2)
        client.close()
    result["total_s"] = round(time.perf_counter() - t0, 2)
    result["targets"] = {
        key: {"limit": f"{op} {limit}", "value": result.get(key),
              "holds": None if result.get(key) is None
              else (result[key] <= limit if op == "<=" else result[key] >= limit)}
        for key, (op, limit) in TARGETS.items()
    }
    text = json.dumps(result, indent=2, sort_keys=False)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
