"""Strip outputs and execution counts from notebooks, in place (for contributors).

    python tools/strip_outputs.py lessons/ course/source/      # folders: every *.ipynb
    python tools/strip_outputs.py lessons/01_backprop_and_gradcheck.ipynb

Notebooks in git carry no outputs: code cells get ``outputs = []`` and
``execution_count = None``, and the per-cell ``execution`` timing metadata that
nbclient adds is removed. Sources, tags and other metadata are kept. A notebook that is
already clean is not rewritten. ``python tools/check_clean_notebooks.py`` checks the same.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

SKIP_DIRS = {".ipynb_checkpoints"}


def strip(nb) -> bool:
    """Strip ``nb`` in place; return True if anything changed."""
    changed = False
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if cell.get("outputs") or cell.get("execution_count") is not None:
            changed = True
        cell.outputs = []
        cell.execution_count = None
        if cell.metadata.pop("execution", None) is not None:
            changed = True
    if nb.metadata.pop("widgets", None) is not None:  # widget state saved by Jupyter
        changed = True
    return changed


def notebooks(paths):
    """Every notebook among ``paths``, folders searched recursively."""
    for p in map(Path, paths):
        if p.is_dir():
            yield from (f for f in sorted(p.rglob("*.ipynb")) if not SKIP_DIRS & set(f.parts))
        elif p.is_file():
            yield p
        else:
            raise FileNotFoundError(f"no such notebook or folder: {p}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="notebooks or folders")
    args = parser.parse_args(argv)
    try:
        files = list(notebooks(args.paths))
    except FileNotFoundError as exc:
        print(f"strip_outputs: {exc}", file=sys.stderr)
        return 1
    for path in files:
        nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
        if strip(nb):
            nbformat.write(nb, path)
            print(f"stripped {path}")
        else:
            print(f"clean    {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
