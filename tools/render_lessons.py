"""Render the lessons as HTML pages with every output and figure, into build/html/.

    python tools/render_lessons.py                # every lesson, full setting
    python tools/render_lessons.py --fast         # SCRATCHVAE_FAST=1: the quick CI setting
    python tools/render_lessons.py lessons/01_backprop_and_gradcheck.ipynb --out /tmp/html

Each notebook is executed top to bottom (``jupyter nbconvert --execute --to html``) in
its own folder, so a page shows exactly what a fresh run gives; the notebooks themselves
are not changed. The pages are self-contained (figures embedded), for students who want
to read a lesson before running it. Exits with status 1 if any lesson fails to run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def render(notebook: Path, out: Path, fast: bool, timeout: int) -> bool:
    """Execute ``notebook`` and write ``out/<name>.html``; return True on success."""
    env = dict(os.environ)
    if fast:
        env["SCRATCHVAE_FAST"] = "1"
    cmd = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--execute",
           f"--ExecutePreprocessor.timeout={timeout}", "--output-dir", str(out), str(notebook)]
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        print(f"FAILED   {notebook} after {seconds:.0f} s:\n{result.stderr[-3000:]}", file=sys.stderr)
        return False
    print(f"rendered {notebook} -> {out / (notebook.stem + '.html')} in {seconds:.0f} s")
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to render (default: every lessons/*.ipynb)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "html", help="output folder (default build/html)")
    parser.add_argument("--fast", action="store_true", help="set SCRATCHVAE_FAST=1 (quick, smaller runs)")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds allowed per cell (default 1200)")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted((ROOT / "lessons").glob("*.ipynb"))
    if not notebooks:
        print("render_lessons: no notebooks found", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    ok = [render(nb, args.out, args.fast, args.timeout) for nb in notebooks]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
