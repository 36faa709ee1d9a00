"""The command line: argparse's types for each kind of value, and the parser with every
command's options and examples."""

from __future__ import annotations

import argparse
import os

from .. import __version__, datasets
from ..backend import DTYPES
from ..checks import positive_int
from ..models.objectives import OBJECTIVES
from .bench import WORKLOADS, batch_size_type
from .from_checkpoint import MAX_RECONSTRUCTIONS, MAX_SAMPLES

EXAMPLES = {
    "train": """examples:
  scratchvae train                                  # digits, 2-D latent, into runs/digits
  scratchvae train --resume runs/digits --epochs 500  # continue that run (after Ctrl-C, or for more epochs)
  scratchvae train --force                          # start over in runs/digits, replacing the run there
  scratchvae train --out runs/wide --z-dim 8 --hidden 512 256
  scratchvae train --dataset mnist --epochs 20 --hidden 400 --z-dim 20
  scratchvae train --likelihood gaussian --samples 5 --kl-warmup 2000
  scratchvae train --out runs/beta4 --z-dim 10 --beta 4       # a beta-VAE
  scratchvae train --out runs/iwae --z-dim 10 --objective iwae --samples 5   # the IWAE bound, k = 5
  scratchvae train --out runs/cvae --conditional    # draws the digit you ask for: samples.png, a row per class
  scratchvae train --backend cupy --batch-size 1024
  scratchvae train --no-kernels                     # the textbook alone, no compiled twins""",
    "sample": """examples:
  scratchvae sample runs/digits/model.npz
  scratchvae sample runs/digits/model.npz --n 100 --seed 3 --out samples.png
  scratchvae sample runs/cvae/model.npz              # a conditional VAE: a row per class
  scratchvae sample runs/cvae/model.npz --label 7    # ... or only 7s""",
    "reconstruct": """examples:
  scratchvae reconstruct runs/digits/model.npz
  scratchvae reconstruct runs/digits/model.npz --n 20 --out recon.png""",
    "evaluate": """examples:
  scratchvae evaluate runs/digits/model.npz              # IWAE with k = 1000 on the test set
  scratchvae evaluate runs/digits/model.npz --k 5000 --split val""",
    "bench": """examples:
  scratchvae bench                                  # NumPy: the 784-400-20 VAE at batch 128 and 1024, digits at 64
  scratchvae bench --workloads mnist --batch-sizes 128 --steps 100 --repeats 3   # quicker
  scratchvae bench --no-kernels                     # the textbook alone, without the compiled twins
  scratchvae bench --backend cupy --json gpu.json   # compare with --backend numpy

The data are synthetic, of MNIST's shape (the data do not change the arithmetic). For
PyTorch beside scratchvae, and peak memory, see benchmarks/bench_vae.py in the repository.""",
    "info": """examples:
  scratchvae info
  SCRATCHVAE_BACKEND=auto scratchvae info""",
}


def non_negative_int(text: str) -> int:
    """An ``argparse`` type for seeds: 0, 1, 2, ... or a usage error naming the option."""
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return n


def _finite_float(text: str, zero_allowed: bool) -> float:
    """A finite number >= 0 (``zero_allowed``) or > 0, for argparse; its error says which."""
    try:
        x = float(text)
    except ValueError:
        x = -1.0
    if not (0.0 <= x if zero_allowed else 0.0 < x) or not x < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number {'>=' if zero_allowed else '>'} 0, got {text!r}")
    return x


def count_up_to(limit: int):
    """An ``argparse`` type: a positive integer up to ``limit`` (how many images a figure shows)."""
    def count(text: str) -> int:
        n = positive_int(text)
        if n > limit:
            raise argparse.ArgumentTypeError(f"a figure shows at most {limit} images, got {text}; for more, "
                                             "write several figures (another --seed draws others)")
        return n
    return count


def non_negative_float(text: str) -> float:
    """An ``argparse`` type for weights such as beta: a finite number >= 0."""
    return _finite_float(text, zero_allowed=True)


def positive_float(text: str) -> float:
    """An ``argparse`` type for rates such as --lr: a finite number > 0."""
    return _finite_float(text, zero_allowed=False)


def out_path(text: str) -> str:
    """An ``argparse`` type for output paths: as ``user_path``, but not empty (which
    would write into the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty one")
    return user_path(text)


def user_path(text: str) -> str:
    """An ``argparse`` type for paths: ``~`` is the home folder, even in ``--out=~/x``,
    which the shell leaves as it is."""
    return os.path.expanduser(text)


def threads_setting(text: str):
    from ..threads import parse_setting

    try:
        return parse_setting(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


DATA_DIR_HELP = "MNIST: folder with the IDX files (default: the one the checkpoint recorded)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scratchvae", description="Train a variational autoencoder built from scratch, and look at it.",
        epilog="Run `scratchvae COMMAND --help` for each command's options and examples.")
    p.add_argument("--version", action="version", version=f"scratchvae {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def command(name, help_):
        sp = sub.add_parser(name, help=help_, description=help_, epilog=EXAMPLES[name],
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        sp.add_argument("--backend", default=None, choices=["numpy", "cupy", "auto", "array_api_strict"],
                        help="array backend (default: $SCRATCHVAE_BACKEND or numpy)")
        sp.add_argument("--dtype", default=None, choices=list(DTYPES),
                        help="floating-point type of the arithmetic (default: $SCRATCHVAE_DTYPE, else "
                             + ("the checkpoint's" if name in ("sample", "reconstruct", "evaluate") else "float32")
                             + ")")
        return sp

    t = command("train", "train a VAE and write checkpoint, metrics and figures")
    t.add_argument("--out", type=out_path, default="runs/digits",
                   help="output folder (default: runs/digits); one that holds a run is refused without "
                        "--resume or --force")
    t.add_argument("--resume", type=out_path, default=None, metavar="DIR",
                   help="continue the run in DIR from its last checkpoint, with its saved configuration, to "
                        "its --epochs or to the --epochs given")
    t.add_argument("--force", action="store_true", help="start over in an --out that holds a run, replacing it")
    t.add_argument("--dataset", default="digits", help=f"one of {', '.join(datasets.available())} (default: digits)")
    t.add_argument("--data-dir", type=user_path, default=None, help="folder with the MNIST IDX files (default: $SCRATCHVAE_DATA or the cache)")
    t.add_argument("--hidden", type=positive_int, nargs="+", default=[256], help="hidden layer sizes (default: 256)")
    t.add_argument("--z-dim", type=positive_int, default=2, help="latent dimension (default: 2, for the latent map and manifold)")
    t.add_argument("--likelihood", choices=["bernoulli", "gaussian"], default="bernoulli", help="decoder likelihood")
    t.add_argument("--decoder-logvar", type=float, default=None,
                   help="Gaussian decoder: fixed log-variance (default: learned per pixel)")
    t.add_argument("--activation", default="relu", help="hidden activation (default: relu)")
    t.add_argument("--samples", type=positive_int, default=1,
                   help="L, samples of z per example in the ELBO, or the IWAE's k (default: 1)")
    t.add_argument("--objective", choices=list(OBJECTIVES), default="elbo",
                   help="training objective: elbo (the KL in closed form), elbo_mc (Monte-Carlo ELBO, "
                        "log p(x, z) - log q(z | x) per sample), iwae (importance-weighted bound with "
                        "k = --samples) (default: elbo)")
    t.add_argument("--conditional", action="store_true",
                   help="train a conditional VAE on the images and their labels; samples.png then has a "
                        "row per class")
    t.add_argument("--epochs", type=positive_int, default=None,
                   help="epochs in all (default: 300, about 10 s for digits on 2 cores; with --resume, the run's)")
    t.add_argument("--batch-size", type=positive_int, default=64, help="batch size (default: 64)")
    t.add_argument("--lr", type=positive_float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    t.add_argument("--kl-warmup", type=non_negative_int, default=0,
                   help="steps over which the KL weight rises 0 -> beta (default: 0)")
    t.add_argument("--beta", type=non_negative_float, default=1.0,
                   help="weight of the KL, the beta-VAE's beta (default: 1, the ELBO)")
    t.add_argument("--binarize", choices=["fixed", "dynamic"], default=None, help="binarize pixels (default: grey levels)")
    t.add_argument("--iwae-k", type=positive_int, default=1000, help="importance samples for the test log-likelihood (default: 1000)")
    t.add_argument("--eval-samples", type=positive_int, default=10, help="samples per example for the reported ELBOs (default: 10)")
    t.add_argument("--seed", type=non_negative_int, default=0, help="seed of split, weights, noise and shuffling (default: 0)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--threads", type=threads_setting, default=None,
                   help="BLAS threads while training: auto (the default: measured, and one for small "
                        "products) or a number; SCRATCHVAE_THREADS sets the default")
    t.add_argument("--no-kernels", action="store_true",
                   help="train with the textbook alone, without the compiled twins of scratchvae.kernels "
                        "(default: they run where this backend has them, unless SCRATCHVAE_KERNELS=off)")

    for name, help_, default_n, limit, default_name in (
            ("sample", "decode random draws from the prior into an image grid", 64, MAX_SAMPLES,
             "samples-seed<S>-n<N>.png"),
            ("reconstruct", "test images beside their reconstructions", 10, MAX_RECONSTRUCTIONS,
             "reconstructions-n<N>.png")):
        s = command(name, help_)
        s.add_argument("checkpoint", type=user_path, help="a model.npz written by `scratchvae train`")
        s.add_argument("--n", type=count_up_to(limit), default=default_n,
                       help=f"how many images, at most {limit} (default: {default_n})")
        s.add_argument("--out", type=out_path, default=None,
                       help="figure to write: a file (.png unless it names another format such as .pdf) or a "
                            f"folder (default: {default_name} beside the checkpoint; the run's own figures are "
                            "never overwritten)")
        s.add_argument("--seed", type=non_negative_int, default=0, help="seed of the draws (default: 0)")
        if name == "reconstruct":
            s.add_argument("--data-dir", type=user_path, default=None, help=DATA_DIR_HELP)
        else:
            s.add_argument("--label", type=non_negative_int, default=None,
                           help="a conditional VAE: draw only this class (default: a row per class)")

    e = command("evaluate", "negative ELBO and importance-weighted log-likelihood from a checkpoint")
    e.add_argument("checkpoint", type=user_path, help="a model.npz written by `scratchvae train`")
    e.add_argument("--k", type=positive_int, default=1000, help="importance samples per example (default: 1000)")
    e.add_argument("--samples", type=positive_int, default=10, help="samples per example for the ELBO (default: 10)")
    e.add_argument("--split", choices=["train", "val", "test"], default="test", help="which split (default: test)")
    e.add_argument("--seed", type=non_negative_int, default=0, help="seed of the Monte-Carlo draws (default: 0)")
    e.add_argument("--data-dir", type=user_path, default=None, help=DATA_DIR_HELP)

    bn = command("bench", "time a training step here: per epoch, per phase, against the matmul floor")
    bn.add_argument("--workloads", nargs="+", default=["mnist", "digits"], choices=sorted(WORKLOADS),
                    help="what to time: mnist (784-400-20), digits (64-256-2) (default: both)")
    bn.add_argument("--batch-sizes", type=batch_size_type, nargs="+", default=None,
                    help="batch sizes of the mnist workload (default: 128 1024)")
    bn.add_argument("--digits-batch-size", type=batch_size_type, default=64,
                    help="batch size of the digits workload (default: 64)")
    bn.add_argument("--steps", type=positive_int, default=None,
                    help="steps per timed epoch (default: a whole epoch of 60,000 examples); figures are "
                         "scaled to 60,000 examples")
    bn.add_argument("--repeats", type=positive_int, default=5, help="timed epochs; the median is reported (default: 5)")
    bn.add_argument("--warmup", type=non_negative_int, default=20, help="untimed steps first (default: 20)")
    bn.add_argument("--threads", type=non_negative_int, default=2,
                    help="BLAS threads, 0 for the library's default (default: 2)")
    bn.add_argument("--no-kernels", action="store_true",
                    help="time the textbook alone, without the compiled twins of scratchvae.kernels")
    bn.add_argument("--retain-freed-memory", action="store_true",
                    help="glibc keeps freed memory for reuse (backend.retain_freed_memory), as `scratchvae train` does")
    bn.add_argument("--no-memory", action="store_true",
                    help="deprecated, does nothing: memory is measured by benchmarks/bench_vae.py")
    bn.add_argument("--json", type=user_path, default=None, help="also write the figures to this JSON file")

    command("info", "version, backend and device, which path training runs, data cache folder")

    return p
