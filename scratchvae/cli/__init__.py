"""The ``scratchvae`` command: train a VAE and write the figures a person wants to see.

    scratchvae train --out runs/digits          # about 10 s on a 2-core laptop CPU
    scratchvae train --resume runs/digits --epochs 500   # continue it (a folder holding a run is never overwritten silently)
    scratchvae sample runs/digits/model.npz
    scratchvae reconstruct runs/digits/model.npz
    scratchvae evaluate runs/digits/model.npz --k 5000
    scratchvae bench --workloads mnist --batch-sizes 128
    scratchvae info

Errors a user can make (unknown data set, no network, unwritable folder, bad checkpoint)
are printed as one line, not a traceback.

The commands live one to a file: train.py, from_checkpoint.py (sample, reconstruct,
evaluate), bench.py, info.py; options.py holds the parser, common.py what they share.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

from .. import backend, checkpoint
from . import bench, from_checkpoint, info, train
from .common import UserError, holds_run, quote
from .options import build_parser  # noqa: F401  (cli.build_parser: the parser, for tests and docs)

COMMANDS = {"train": train.train, "sample": from_checkpoint.sample, "reconstruct": from_checkpoint.reconstruct,
            "evaluate": from_checkpoint.evaluate, "bench": bench.bench, "info": info.info}


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    _keep_home_as_it_is()
    from ..datasets import MNISTUnavailable
    from ..training import TrainingDiverged

    try:
        return COMMANDS[args.command](args)
    except MNISTUnavailable as exc:  # the library's message names data_dir=; here the options are named
        print(f"scratchvae {args.command}: error: {mnist_advice(exc) if exc.data_dir else exc}", file=sys.stderr)
        return 2
    except (UserError, ValueError, checkpoint.CheckpointError, backend.BackendError,
            TrainingDiverged) as exc:
        message = " ".join(str(exc).split())  # one line, whatever the exception's layout
        print(f"scratchvae {args.command}: error: {message}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"scratchvae {args.command}: error: out of memory; choose a smaller model (--hidden, --z-dim) or "
              "batch (--batch-size), or close other programs", file=sys.stderr)
        return 2
    except OSError as exc:  # no such file, permission denied, is a directory, disk full, ...
        where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f)
        print(f"scratchvae {args.command}: error: {exc.strerror or exc}{': ' + where if where else ''}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        out = Path(args.out) if args.command == "train" else None
        how = (f"; continue with `scratchvae train --resume {quote(out)}`"
               if out is not None and holds_run(out) else "")
        print(f"scratchvae {args.command}: interrupted{how}", file=sys.stderr)
        return 130


def _keep_home_as_it_is() -> None:
    """matplotlib keeps its font cache in ~/.cache/matplotlib and makes the folders,
    HOME itself included, where they do not exist. Where HOME does not exist (a service
    account, HOME=/nonexistent), this command gives matplotlib a temporary folder instead,
    removed at exit: nothing is created under HOME but the data cache, and only when data
    is actually cached."""
    if os.environ.get("MPLCONFIGDIR"):
        return
    try:
        home = Path.home()
    except RuntimeError:  # no HOME and no password entry
        home = None
    if home is None or not home.is_dir():
        folder = tempfile.mkdtemp(prefix="scratchvae-matplotlib-")
        os.environ["MPLCONFIGDIR"] = folder
        atexit.register(shutil.rmtree, folder, True)


def mnist_advice(exc) -> str:
    """MNISTUnavailable as one line in the command's terms (--data-dir, --dataset digits)."""
    from ..datasets import mnist

    if exc.reason and "file, not a folder" in exc.reason:
        return f"--data-dir {exc.data_dir} is a file; pass the folder that holds the four MNIST files"
    return (f"MNIST is not in {exc.data_dir} and cannot be downloaded: {exc.reason}. Put the four files "
            f"({', '.join(mnist.FILES.values())}; gzipped or not) in a folder and pass --data-dir FOLDER "
            f"(or set {mnist.ENV_VAR}), or use --dataset digits, which needs no network")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
