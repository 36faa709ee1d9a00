"""scratchvae against PyTorch eager and against the matrix-multiply floor, side by side.

For each workload (see scratchvae.bench: the PyTorch examples' 784-400-20 VAE at batch
128 and 1024, and the 64-256-2 digits model at batch 64) this times, interleaved in one
process so that a busy machine slows them alike:

- scratchvae on the active backend (``--backend``): VAE.loss_and_grads + Adam.step;
- PyTorch eager, the same model and loop, with torch.optim.Adam and with Adam(fused=True),
  when torch is installed (``--torch-device cpu|cuda``, ``--torch-device none`` to skip);
  on the CPU each also with torch.set_flush_denormal(True) ("+FTZ", ``--no-torch-ftz``
  to skip): PyTorch's Adam lets moments decay into subnormal numbers, which x86 CPUs
  compute many times slower, and scratchvae's does not (arrays.flush_subnormals).
  The flag must be set before PyTorch starts its threads, so these two are timed after
  the others, each in a process of its own (not interleaved), and so is scratchvae once
  more ("scratchvae_alone"), for a comparison of like with like: alone, scratchvae's
  large arrays cost page faults that PyTorch's presence in the process hides;
- the floor: the step's matrix products alone, timed at the same shapes on scratchvae's
  backend (and, for reference, with PyTorch's BLAS).

It reports time per epoch (60,000 examples: the median over ``--epochs-timed`` whole
epochs, the frameworks taking turns; ``--steps N`` times rounds of N steps instead, scaled
to 60,000 examples), examples
per second, the time by phase (data, forward, backward, optimizer; medians of interleaved
rounds, synchronized at each phase boundary), peak memory (each framework trained in a
fresh process), and the ratios the performance targets are stated in.
Output: a table on stdout and every figure in a JSON file (``--out``).

    python benchmarks/bench_vae.py --out benchmarks/results-cpu.json              # CPU, 2 threads
    python benchmarks/bench_vae.py --backend cupy --torch-device cuda --batch-sizes 128 1024 \\
        --epochs-timed 3 --out results-gpu.json                                   # a GPU
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout

from scratchvae import backend  # noqa: E402
from scratchvae import bench as sb  # noqa: E402
from scratchvae.checks import positive_int  # noqa: E402


def _torch_or_none(device: str):
    if device == "none":
        return None, "skipped (--torch-device none)"
    try:
        import torch
    except ImportError:
        return None, "torch is not installed (pip install torch==2.13.0 for the CPU build)"
    if device.startswith("cuda") and not torch.cuda.is_available():
        return None, f"torch {torch.__version__} sees no CUDA device"
    return torch, None


def _child(cmd, timeout: int = 1800, cwd=None):
    """Run a child process; (its result, None), or (result, {"error": its last stderr line})."""
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    if out.returncode != 0:
        return out, {"error": (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]}
    return out, None


def _probe_torch(workload: str, batch: int, fused: bool, device: str, steps: int, threads, retain: bool) -> dict:
    cmd = [sys.executable, str(HERE / "torch_reference.py"), "--probe-memory", "--workload", workload,
           "--batch-size", str(batch), "--device", device, "--steps", str(steps), "--threads", str(threads or 0)]
    if fused:
        cmd.append("--fused")
    if retain:
        cmd.append("--retain-freed-memory")
    out, error = _child(cmd, timeout=900)
    if error:
        return error
    return json.loads(out.stdout.strip().splitlines()[-1])


def _time_torch_alone(workload: str, batch: int, fused: bool, steps: int, args) -> dict:
    """PyTorch with torch.set_flush_denormal(True), timed in a fresh process (it must be
    set before PyTorch starts its threads): the same warm-up, rounds and steps."""
    cmd = [sys.executable, str(HERE / "torch_reference.py"), "--flush-denormal", "--json", "--workload", workload,
           "--batch-size", str(batch), "--steps", str(steps), "--rounds", str(args.epochs_timed),
           "--warmup", str(args.warmup), "--threads", str(args.threads or 0)]
    if fused:
        cmd.append("--fused")
    if args.retain_freed_memory:  # the same allocator setting as every other run
        cmd.append("--retain-freed-memory")
    out, error = _child(cmd)
    if error:
        return error
    got = json.loads(out.stdout.strip().splitlines()[-1])
    return {"label": got["label"], **sb.epoch_figures(got["step_seconds"], batch),
            "timed": "alone, in a process of its own, after the interleaved runs"}


def _time_scratch_alone(workload: str, batch: int, steps: int, args) -> dict:
    """scratchvae timed in a fresh process of its own (``python -m scratchvae.bench``),
    with the same warm-up, rounds, steps and threads as the +FTZ runs."""
    with tempfile.TemporaryDirectory() as tmp:
        out_json = str(Path(tmp) / "alone.json")
        size = ["--batch-sizes", str(batch)] if workload == "mnist" else ["--digits-batch-size", str(batch)]
        cmd = [sys.executable, "-m", "scratchvae.bench", "--backend", args.backend, "--workloads", workload, *size,
               "--steps", str(steps), "--repeats", str(args.epochs_timed), "--warmup", str(args.warmup),
               "--threads", str(args.threads or 0), "--no-memory", "--json", out_json]
        if args.retain_freed_memory:
            cmd.append("--retain-freed-memory")
        if args.no_kernels:
            cmd.append("--no-kernels")
        _, error = _child(cmd, cwd=HERE.parent)
        if error:
            return error
        run = json.loads(Path(out_json).read_text())["runs"][0]["scratchvae"]
    return {"label": "scratchvae alone", **sb.epoch_figures([ms / 1e3 for ms in run["step_ms_all"]], batch),
            "timed": "alone, in a process of its own, after the interleaved runs"}


def _figures(run, B: int) -> dict:
    return {"label": run.label, **sb.epoch_figures(run.times, B)}


def run_all(args) -> dict:
    if args.no_kernels:
        sb.turn_off_kernels()
    thread_note = sb.set_threads(args.threads or None)
    retained = backend.retain_freed_memory() if args.retain_freed_memory else False
    b = backend.use(args.backend, dtype="float32")
    torch, why_not = _torch_or_none(args.torch_device)
    if torch is not None and args.threads:
        torch.set_num_threads(args.threads)
    result = {"tool": "benchmarks/bench_vae.py", "date": sb.datetime.datetime.now().isoformat(timespec="seconds"),
              "command": " ".join([Path(sys.executable).name, *sys.argv]), "machine": sb.machine_info(),
              "backend": b.name, "device": str(b.device), "threads": args.threads, "threads_note": thread_note,
              "kernels": sb.fused_kernels(b.name),
              "retain_freed_memory": retained, "torch": torch.__version__ if torch is not None else why_not,
              "torch_device": args.torch_device if torch is not None else None,
              "torch_threads": torch.get_num_threads() if torch is not None else None,
              "load_average_before": sb.load_average(), "runs": []}
    if b.name == "cupy":
        result["machine"].update(sb.gpu_info())
    if torch is not None:
        from torch_reference import TorchRun, time_matmuls as torch_matmuls

        result["torch_config"] = torch.__config__.parallel_info().splitlines()[:6]
    plan = []
    for name in args.workloads:
        w = sb.WORKLOADS[name]
        sizes = (args.batch_sizes or w.batch_sizes) if name == "mnist" else (args.digits_batch_size,)
        plan += [(w, B) for B in sizes]
    for w, B in plan:
        steps = min(args.steps, math.ceil(sb.EPOCH / B)) if args.steps else math.ceil(sb.EPOCH / B)
        print(f"{w.name} {w.layers} batch {B}: {args.epochs_timed} x {steps} steps, interleaved ...",
              file=sys.stderr, flush=True)
        data = sb.synthetic_images(sb.EPOCH, w.x_dim, seed=0)
        runs = {"scratchvae": sb.ScratchRun(w, B).setup(data)}
        if torch is not None:
            runs["torch"] = TorchRun(w, B, fused=False, device=args.torch_device).setup(data)
            runs["torch_fused"] = TorchRun(w, B, fused=True, device=args.torch_device).setup(data)
        sb.timed_repeats(list(runs.values()), steps, args.epochs_timed, args.warmup)
        rec = {"workload": w.name, "layers": w.layers, "batch_size": B, "steps_timed": steps,
               "repeats": args.epochs_timed, "load_average": sb.load_average()}
        breakdowns = sb.timed_breakdowns(list(runs.values()), args.breakdown_steps, args.breakdown_rounds)
        for (key, run), bd in zip(runs.items(), breakdowns):
            rec[key] = _figures(run, B)
            rec[key]["breakdown_ms"] = bd
            rec[key]["final_loss"] = run.losses[-1]
        rec["scratchvae"]["dtypes"] = sorted(runs["scratchvae"].dtypes())
        del runs  # free their memory before the child processes
        if torch is not None and args.torch_ftz and args.torch_device == "cpu":
            rec["scratchvae_alone"] = _time_scratch_alone(w.name, B, steps, args)
            for key, fused in (("torch_ftz", False), ("torch_fused_ftz", True)):
                rec[key] = _time_torch_alone(w.name, B, fused, steps, args)
        shapes = sb.matmul_shapes(w, B)
        floors = [sb.time_matmuls(shapes, args.floor_reps) for _ in range(3)]  # median of 3 measurements
        fl = sorted(floors, key=lambda f: f["matmul_ms"])[1]
        fl["matmul_ms_all"] = [round(f["matmul_ms"], 4) for f in floors]
        fl["epoch_s"] = fl["matmul_ms"] / 1e3 * sb.EPOCH / B
        rec["floor"] = fl
        if torch is not None:
            tf = torch_matmuls(shapes, args.torch_device, args.floor_reps)
            tf["epoch_s"] = tf["matmul_ms"] / 1e3 * sb.EPOCH / B
            rec["floor_torch_blas"] = tf
        if not args.no_memory:
            mem_steps = min(steps, 200)
            rec["scratchvae"]["memory"] = sb.probe_memory(w.name, B, mem_steps, b.name, args.threads or None, retained)
            if torch is not None:
                for key, fused in (("torch", False), ("torch_fused", True)):
                    rec[key]["memory"] = _probe_torch(w.name, B, fused, args.torch_device, mem_steps, args.threads, retained)
        rec["ratios"] = ratios(rec)
        result["runs"].append(rec)
        del data
    result["load_average_after"] = sb.load_average()
    return result


TORCH_KEYS = ("torch", "torch_fused", "torch_ftz", "torch_fused_ftz")


def ratios(rec: dict) -> dict:
    """The figures the performance targets are stated in."""
    s = rec["scratchvae"]
    out = {"scratchvae_over_floor": s["step_ms"] / rec["floor"]["matmul_ms"],
           "scratchvae_over_floor_best": s["step_ms_best"] / rec["floor"]["matmul_ms"]}
    if "floor_torch_blas" in rec:
        out["scratchvae_over_floor_torch_blas"] = s["step_ms"] / rec["floor_torch_blas"]["matmul_ms"]
    bd = s["breakdown_ms"]
    out["scratchvae_optimizer_share"] = bd["optimizer"] / sum(bd.values())
    for key in TORCH_KEYS:
        if "step_ms" in rec.get(key, {}):
            # the median epoch, as the targets are stated: training as a user runs it,
            # including any slowdown that sets in after the first epoch (subnormals)
            out[f"scratchvae_over_{key}"] = s["step_ms"] / rec[key]["step_ms"]
            # each framework's fastest round: on a loaded machine, load slows the
            # frameworks unequally (load_experiment.py); the best round is the least loaded
            out[f"scratchvae_over_{key}_best"] = s["step_ms_best"] / rec[key]["step_ms_best"]
            alone = rec.get("scratchvae_alone", {})
            if "timed" in rec[key] and "step_ms" in alone:  # both timed alone: like with like
                out[f"scratchvae_alone_over_{key}"] = alone["step_ms"] / rec[key]["step_ms"]
            if "timed" not in rec[key]:  # interleaved: the ratio per timed epoch, how much noise moves it
                pairs = [a / b for a, b in zip(s["step_ms_all"], rec[key]["step_ms_all"])]
                out[f"scratchvae_over_{key}_per_epoch"] = [round(p, 3) for p in pairs]
                out[f"scratchvae_over_{key}_median_of_pairs"] = statistics.median(pairs)
            mem_s, mem_t = s.get("memory", {}), rec[key].get("memory", {})
            if "peak_rss_mb" in mem_s and "peak_rss_mb" in mem_t:
                out[f"peak_rss_scratchvae_over_{key}"] = mem_s["peak_rss_mb"] / mem_t["peak_rss_mb"]
                out[f"train_increment_mb_scratchvae_minus_{key}"] = (mem_s["train_increment_mb"]
                                                                    - mem_t["train_increment_mb"])
    return out


def table(result: dict) -> str:
    lines = [sb.table(result, columns=("scratchvae", "scratchvae_alone", *TORCH_KEYS))]
    lines.append("")
    lines.append("ratios of median rounds, each framework's fastest round in brackets (targets: over torch "
                 "<= 0.8, over torch_fused <= 1.0, over floor <= 1.5, optimizer share <= 15%, peak memory "
                 "<= torch's):")
    for rec in result["runs"]:
        r = rec["ratios"]
        bits = [f"over floor {r['scratchvae_over_floor']:.2f} [{r['scratchvae_over_floor_best']:.2f}]"]
        for key in TORCH_KEYS:
            if f"scratchvae_over_{key}" in r:
                bits.append(f"over {key} {r[f'scratchvae_over_{key}']:.2f} "
                            f"[{r[f'scratchvae_over_{key}_best']:.2f}]")
            if f"peak_rss_scratchvae_over_{key}" in r:
                bits.append(f"peak RSS over {key} {r[f'peak_rss_scratchvae_over_{key}']:.2f}")
        for key in ("torch_ftz", "torch_fused_ftz"):
            if f"scratchvae_alone_over_{key}" in r:
                bits.append(f"alone over {key} alone {r[f'scratchvae_alone_over_{key}']:.2f}")
        bits.append(f"optimizer {100 * r['scratchvae_optimizer_share']:.0f}% of the step")
        lines.append(f"  {rec['workload']} {rec['layers']} batch {rec['batch_size']}: " + ", ".join(bits))
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default="numpy", choices=["numpy", "cupy", "auto"], help="scratchvae's backend")
    p.add_argument("--torch-device", default="cpu", help="cpu, cuda, or none to skip PyTorch")
    p.add_argument("--workloads", nargs="+", default=["mnist", "digits"], choices=sorted(sb.WORKLOADS))
    p.add_argument("--batch-sizes", type=int, nargs="+", default=None, help="mnist batch sizes (default: 128 1024)")
    p.add_argument("--digits-batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=0,
                   help="steps per timed round (default 0: a whole epoch, 60,000 / batch; N: rounds "
                        "of N steps, or a whole epoch if that is shorter); figures are scaled to "
                        "60,000 examples")
    p.add_argument("--epochs-timed", type=positive_int, default=5,
                   help="timed rounds per framework, interleaved; medians reported (default: 5)")
    p.add_argument("--no-torch-ftz", dest="torch_ftz", action="store_false",
                   help="skip the runs timed alone: PyTorch with torch.set_flush_denormal(True), and "
                        "scratchvae in a process of its own")
    p.add_argument("--warmup", type=int, default=30, help="warm-up steps per framework")
    p.add_argument("--breakdown-steps", type=int, default=20, help="steps per breakdown round")
    p.add_argument("--breakdown-rounds", type=int, default=7, help="interleaved breakdown rounds (median)")
    p.add_argument("--floor-reps", type=int, default=30)
    p.add_argument("--threads", type=int, default=2, help="threads for both NumPy's BLAS and PyTorch (0: defaults)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory child processes")
    p.add_argument("--retain-freed-memory", action="store_true",
                   help="glibc keeps freed memory (scratchvae.backend.retain_freed_memory), for every framework")
    p.add_argument("--no-kernels", action="store_true",
                   help="scratchvae without its fused kernels: the array-API reference alone")
    p.add_argument("--out", default=None, help="JSON file for every figure")
    args = p.parse_args(argv)
    try:
        result = run_all(args)
    except backend.BackendError as exc:
        print(f"bench_vae.py: {exc}", file=sys.stderr)
        return 2
    text = table(result)
    m = result["machine"]
    print(f"{result['date']}  {m['cpu']}, {m['cores']} cores, numpy {m['numpy']} ({m['numpy_blas']}), "
          f"torch {result['torch']}; scratchvae on {result['backend']} (kernels: {result['kernels']}); "
          f"{result['threads_note']}; "
          f"{'glibc keeps freed memory; ' if result['retain_freed_memory'] else ''}"
          f"load average {result['load_average_before']} -> {result['load_average_after']}")
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
