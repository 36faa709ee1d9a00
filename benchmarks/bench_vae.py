"""scratchvae against PyTorch and against the matrix-multiply floor: one paired run.

For each workload (the PyTorch examples' 784-400-20 VAE at batch 128 and 1024, the
64-256-2 digits model that `scratchvae train` uses at batch 64; Adam, lr 1e-3, float32,
synthetic data of MNIST's shape) every contender trains in a process of its own
(harness.py), with the same threads, and the contenders take turns, one whole epoch at a
time, the order rotated each round:

    scratchvae           as installed: its compiled twins where they run (Trainer's default)
    textbook             scratchvae's textbook alone: Trainer(kernels=False)
    torch                PyTorch eager, torch.optim.Adam                  (torch_reference.py)
    torch_fused          PyTorch eager, Adam(fused=True)
    torch_ftz            PyTorch eager with torch.set_flush_denormal(True)
    torch_fused_ftz      fused Adam with torch.set_flush_denormal(True)

It reports each contender's seconds per epoch of 60,000 examples (the median and the
fastest of the timed epochs), the peak resident memory of its process, the matrix-multiply
floor (the step's products alone, NumPy's BLAS in the scratchvae worker; PyTorch's
beside it) and the ratios the targets are stated in. Without PyTorch installed it says
so and times scratchvae alone.

    python benchmarks/bench_vae.py --out benchmarks/results-cpu.json                 # the real run
    python benchmarks/bench_vae.py --workloads digits --examples 2000 --rounds 2     # a quick look
    python benchmarks/bench_vae.py --backend cupy --torch-device cuda --out results-gpu.json
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import contention  # noqa: E402
import harness  # noqa: E402

SCRATCH = {"scratchvae": "scratchvae", "textbook": "scratchvae textbook"}
TORCH = {"torch": ("pytorch eager", False, False), "torch_fused": ("pytorch fused Adam", True, False),
         "torch_ftz": ("pytorch eager +FTZ", False, True), "torch_fused_ftz": ("pytorch fused Adam +FTZ", True, True)}
CONTENDERS = (*SCRATCH, *TORCH)
TARGETS = {"torch": "<= 0.8", "torch_fused": "<= 1.0", "floor_best": "<= 1.5, the fastest epoch",
           "peak_rss_torch": "< 1"}


def torch_missing():
    """None if PyTorch can be imported, else why not."""
    if importlib.util.find_spec("torch") is None:
        return "PyTorch is not installed (pip install torch==2.13.0 for the CPU build): its columns are skipped"
    return None


def start(key: str, workload: str, batch: int, args):
    spec = {"contender": key, "workload": workload, "batch": batch, "examples": args.examples,
            "warmup": args.warmup, "label": key}
    if key in SCRATCH:
        return harness.Worker(HERE / "harness.py", {**spec, "backend": args.backend}, args.threads,
                              args.retain_freed_memory)
    _, fused, ftz = TORCH[key]
    spec.update(fused=fused, flush_denormal=ftz, device=args.torch_device, threads=args.threads)
    return harness.Worker(HERE / "torch_reference.py", spec, args.threads, args.retain_freed_memory)


def run_workload(workload: str, batch: int, contenders: list, args, say) -> dict:
    steps = harness.steps_per_epoch(args.examples, batch)
    rec = {"workload": workload, "layers": harness.layers(workload), "batch_size": batch, "examples": args.examples,
           "steps_per_epoch": steps, "rounds": args.rounds, "contenders": {}}
    workers = {}
    try:
        for key in contenders:  # one at a time: each warms up alone
            say(f"{workload} {rec['layers']} batch {batch}: starting {key} ...")
            try:
                workers[key] = start(key, workload, batch, args)
                rec["contenders"][key] = {"info": workers[key].info}
            except harness.WorkerError as exc:
                rec["contenders"][key] = {"error": str(exc)}
        turns = harness.take_turns(workers, args.rounds, say)
        scale = harness.EPOCH / args.examples  # figures are per 60,000 examples
        for key, seconds in turns["times"].items():
            c = rec["contenders"][key]
            if key in turns["errors"]:
                c["error"] = turns["errors"][key]
            if seconds:
                c.update(epoch_s_all=[round(s * scale, 4) for s in seconds], epoch_s=statistics.median(seconds) * scale,
                         epoch_s_best=min(seconds) * scale, step_ms=1e3 * statistics.median(seconds) / steps)
            if key not in turns["errors"]:
                c["memory"] = workers[key].ask({"do": "memory"})
        rec["floor"] = floor(workers, batch, args)
    finally:
        for w in workers.values():
            w.close()
    rec["ratios"] = ratios(rec)
    return rec


def floor(workers: dict, batch: int, args) -> dict:
    """The step's products alone, the median of three measurements, in the scratchvae
    worker (NumPy's BLAS); with PyTorch's BLAS in the eager worker, for reference."""
    scratch = next((w for k, w in workers.items() if k in SCRATCH and w.proc.poll() is None), None)
    if scratch is None:
        return {}
    got = sorted((scratch.ask({"do": "floor", "reps": args.floor_reps}) for _ in range(3)), key=lambda f: f["ms"])
    out = {"ms": got[1]["ms"], "ms_all": [f["ms"] for f in got]}
    out["epoch_s"] = out["ms"] / 1e3 * harness.EPOCH / batch
    if "torch" in workers and workers["torch"].proc.poll() is None:
        torch_ms = workers["torch"].ask({"do": "floor", "shapes": got[1]["shapes"], "reps": args.floor_reps})["ms"]
        out["torch_blas_ms"], out["torch_blas_epoch_s"] = torch_ms, torch_ms / 1e3 * harness.EPOCH / batch
    return out


def ratios(rec: dict) -> dict:
    """Median epoch over median epoch (and fastest over fastest), against each PyTorch
    contender, the floor and the other scratchvae path; peak memory over PyTorch's."""
    c, out = rec["contenders"], {}
    for s in SCRATCH:
        if "epoch_s" not in c.get(s, {}):
            continue
        for t in TORCH:
            if "epoch_s" in c.get(t, {}):
                out[f"{s}/{t}"] = c[s]["epoch_s"] / c[t]["epoch_s"]
                out[f"{s}/{t} best"] = c[s]["epoch_s_best"] / c[t]["epoch_s_best"]
        if rec["floor"].get("epoch_s"):
            out[f"{s}/floor"] = c[s]["epoch_s"] / rec["floor"]["epoch_s"]
            out[f"{s}/floor best"] = c[s]["epoch_s_best"] / rec["floor"]["epoch_s"]
        for t in ("torch", "torch_fused"):
            if "memory" in c.get(s, {}) and "memory" in c.get(t, {}):
                out[f"peak_rss {s}/{t}"] = c[s]["memory"]["peak_rss_mb"] / c[t]["memory"]["peak_rss_mb"]
    if "epoch_s" in c.get("textbook", {}) and "epoch_s" in c.get("scratchvae", {}):
        out["textbook/scratchvae"] = c["textbook"]["epoch_s"] / c["scratchvae"]["epoch_s"]
    return out


def label(key: str, c: dict) -> str:
    if key == "scratchvae" and "info" in c:
        return f"scratchvae ({c['info']['kernels']})"
    return SCRATCH.get(key) or TORCH[key][0]


def table(result: dict) -> str:
    lines = []
    for rec in result["runs"]:
        target = rec["workload"] == "mnist" and rec["batch_size"] == 128  # batch 1024 is reported, not a target
        lines += ["", f"{rec['workload']} {rec['layers']}, batch {rec['batch_size']}: {rec['rounds']} epochs each, "
                      f"taking turns; seconds per epoch of 60,000 examples",
                  f"  {'':<36}{'median':>8}{'fastest':>9}{'ms/step':>9}{'peak RSS MiB':>14}"]
        for key, c in rec["contenders"].items():
            if "epoch_s" not in c:
                lines.append(f"  {label(key, c):<36}{c.get('error', 'no epoch timed')}")
                continue
            mem = c.get("memory", {}).get("peak_rss_mb")
            lines.append(f"  {label(key, c):<36}{c['epoch_s']:>8.3f}{c['epoch_s_best']:>9.3f}{c['step_ms']:>9.3f}"
                         f"{'-' if mem is None else round(mem):>14}")
        fl = rec["floor"]
        if fl:
            lines.append(f"  {'matmul floor (NumPy BLAS)':<36}{fl['epoch_s']:>8.3f}{'':>9}{fl['ms']:>9.3f}")
        if "torch_blas_ms" in fl:
            lines.append(f"  {'matmul floor (PyTorch BLAS)':<36}{fl['torch_blas_epoch_s']:>8.3f}{'':>9}"
                         f"{fl['torch_blas_ms']:>9.3f}")
        r = rec["ratios"]
        lines.append(f"  ratios, median epochs [fastest]{'          target (issue 14)' if target else ''}")
        rows = [("scratchvae", t) for t in (*TORCH, "floor")]
        rows += [("textbook", t) for t in ("torch", "torch_fused", "floor")]
        for s, t in rows:
            if f"{s}/{t}" in r:
                goal = TARGETS.get("floor_best" if t == "floor" else t, "") if target and s == "scratchvae" else ""
                lines.append(f"    {s + ' / ' + t:<34}{r[f'{s}/{t}']:>6.2f} [{r[f'{s}/{t} best']:.2f}]  {goal}")
        for t in ("torch", "torch_fused"):
            if f"peak_rss scratchvae/{t}" in r:
                goal = TARGETS["peak_rss_torch"] if target else ""
                ratio = r[f"peak_rss scratchvae/{t}"]
                lines.append(f"    {'peak RSS scratchvae / ' + t:<34}{ratio:>6.2f}          {goal}")
        if "textbook/scratchvae" in r:
            ratio = r["textbook/scratchvae"]
            lines.append(f"    {'textbook / scratchvae':<34}{ratio:>6.2f}          (what the twins buy)")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="targets: the fastest epoch over the floor; the others median over median")
    p.add_argument("--workloads", nargs="+", default=["mnist", "digits"], choices=sorted(harness.WORKLOADS))
    p.add_argument("--batch-sizes", type=int, nargs="+", default=None, help="mnist batch sizes (default: 128 1024)")
    p.add_argument("--digits-batch-size", type=int, default=64)
    p.add_argument("--contenders", nargs="+", default=list(CONTENDERS), choices=CONTENDERS,
                   help="who trains (default: all; the PyTorch ones where PyTorch is installed)")
    p.add_argument("--examples", type=int, default=harness.EPOCH,
                   help="examples per timed epoch (default: 60,000); figures are scaled to 60,000")
    p.add_argument("--rounds", type=int, default=5, help="timed epochs per contender, taking turns (default: 5)")
    p.add_argument("--warmup", type=int, default=30, help="untimed steps when a worker starts (default: 30)")
    p.add_argument("--floor-reps", type=int, default=30, help="calls per product in the floor (default: 30)")
    p.add_argument("--threads", type=int, default=2, help="threads of every contender, 0 for defaults (default: 2)")
    p.add_argument("--retain-freed-memory", action="store_true",
                   help="glibc keeps freed memory in every worker (as `scratchvae train` asks for itself)")
    p.add_argument("--backend", default="numpy", choices=["numpy", "cupy"], help="scratchvae's backend")
    p.add_argument("--torch-device", default="cpu", help="cpu or cuda")
    p.add_argument("--contention", type=int, default=0, metavar="N",
                   help="time everything beside N processes of BLAS matrix products (benchmarks/contention.py), "
                        "stopped when the run ends (default: 0, quiet)")
    p.add_argument("--out", default=None, help="also write every figure to this JSON file")
    args = p.parse_args(argv)
    if args.contention < 0:
        p.error("--contention must be >= 0")

    def say(text):
        print(text, file=sys.stderr, flush=True)

    contenders = list(args.contenders)
    why = torch_missing()
    if why and any(k in TORCH for k in contenders):
        say(why)
        contenders = [k for k in contenders if k not in TORCH]
    if args.torch_device != "cpu":  # the flush-to-zero flags are the x86 CPU's
        contenders = [k for k in contenders if k not in ("torch_ftz", "torch_fused_ftz")]
    if not contenders:
        raise SystemExit(f"bench_vae.py: nothing left to time (--contenders {' '.join(args.contenders)})")
    result = {"tool": "benchmarks/bench_vae.py", "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "command": " ".join([Path(sys.executable).name, *sys.argv]), "machine": harness.machine(),
              "threads": args.threads, "retain_freed_memory": args.retain_freed_memory, "torch": why,
              "contention": args.contention, "load_average_before": harness.load_average(), "runs": []}
    with contention.competitors(args.contention, max_seconds=3600):
        for name in args.workloads:
            sizes = (args.batch_sizes or harness.WORKLOADS[name][1]) if name == "mnist" else (args.digits_batch_size,)
            for B in sizes:
                result["runs"].append(run_workload(name, B, contenders, args, say))
    result["load_average_after"] = harness.load_average()
    m = result["machine"]
    print(f"{result['date']}  {m['cpu']}, {m['cores']} cores, numpy {m['numpy']} ({m['numpy_blas']}), "
          f"{args.threads or 'default'} threads each"
          + (f", beside {args.contention} BLAS processes" if args.contention else "") + "; load average {result['load_average_before']} -> "
          f"{result['load_average_after']}" + (f"\n{why}" if why else ""))
    print(table(result))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
