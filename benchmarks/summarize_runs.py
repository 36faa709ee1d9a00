"""Several runs of bench_vae.py -> one JSON of their ratios, and the median over runs.

    python benchmarks/summarize_runs.py benchmarks/results-cpu.json r2.json r3.json \\
        --out benchmarks/results-cpu-repeats.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

FRAMEWORKS = ("scratchvae", "torch", "torch_fused", "torch_ftz", "torch_fused_ftz")
KEYS = tuple(f"scratchvae_over_{k}{best}" for best in ("", "_best") for k in (*FRAMEWORKS[1:], "floor")) + (
    "scratchvae_optimizer_share",)


def summarize(paths: list) -> dict:
    runs = {}
    for path in paths:
        result = json.loads(Path(path).read_text())
        runs[str(path)] = {
            "date": result.get("date"), "load_average_before": result.get("load_average_before"),
            "load_average_after": result.get("load_average_after"),
            "workloads": [{"workload": rec["workload"], "batch_size": rec["batch_size"],
                           "step_ms": {k: rec[k]["step_ms"] for k in FRAMEWORKS if "step_ms" in rec.get(k, {})},
                           "step_ms_best": {k: rec[k]["step_ms_best"] for k in FRAMEWORKS
                                            if "step_ms" in rec.get(k, {})},
                           **{k: rec["ratios"][k] for k in KEYS if k in rec["ratios"]}}
                          for rec in result["runs"]],
        }
    medians = {}
    for i, w in enumerate(next(iter(runs.values()))["workloads"]):
        name = f"{w['workload']} batch {w['batch_size']}"
        got = {k: [r["workloads"][i][k] for r in runs.values() if k in r["workloads"][i]] for k in KEYS}
        medians[name] = {k: statistics.median(v) for k, v in got.items() if v}  # a run may lack one (a failed child)
    return {"runs": runs, "medians_over_runs": medians}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="JSON files written by bench_vae.py --out")
    p.add_argument("--note", default="", help="how the runs were made (kept in the JSON)")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    summary = {"note": args.note, **summarize(args.runs)}
    Path(args.out).write_text(json.dumps(summary, indent=1) + "\n")
    for name, m in summary["medians_over_runs"].items():
        print(name, ", ".join(f"{k} {v:.2f}" for k, v in m.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
