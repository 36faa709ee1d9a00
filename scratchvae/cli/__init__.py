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

import sys
from pathlib import Path

from .. import backend, checkpoint
from . import bench, from_checkpoint, info, train
from .common import UserError, quote
from .options import build_parser  # noqa: F401  (cli.build_parser: the parser, for tests and docs)

COMMANDS = {"train": train.train, "sample": from_checkpoint.sample, "reconstruct": from_checkpoint.reconstruct,
            "evaluate": from_checkpoint.evaluate, "bench": bench.bench, "info": info.info}


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from ..datasets import MNISTUnavailable
    from ..training import TrainingDiverged

    try:
        return COMMANDS[args.command](args)
    except (UserError, ValueError, checkpoint.CheckpointError, MNISTUnavailable, backend.BackendError,
            TrainingDiverged) as exc:
        message = " ".join(str(exc).split())  # one line, whatever the exception's layout
        print(f"scratchvae {args.command}: error: {message}", file=sys.stderr)
        return 2
    except OSError as exc:  # no such file, permission denied, is a directory, disk full, ...
        where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f)
        print(f"scratchvae {args.command}: error: {exc.strerror or exc}{': ' + where if where else ''}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        out = Path(args.out) if args.command == "train" else None
        how = (f"; continue with `scratchvae train --resume {quote(out)}`"
               if out is not None and (out / "model.npz").is_file() and (out / "config.json").is_file() else "")
        print(f"scratchvae {args.command}: interrupted{how}", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
