"""Check that the course notebooks are fit for git and for CI.

    python tools/check_clean_notebooks.py                 # every notebook in lessons/ and course/source/
    python tools/check_clean_notebooks.py path.ipynb ...  # these (lessons if under lessons/)

Every notebook must be valid nbformat 4, have a python3 kernelspec, and carry no outputs,
no execution counts and no execution timing metadata (strip them with
``python tools/strip_outputs.py FILE``). A lesson (a notebook under ``lessons/``) must
also start with a code cell tagged ``parameters`` that sets DATASET and FAST, so that CI
and papermill-style tools can find its knobs. Prints one line per problem, naming the
file and the cell (counted from 1), and exits with status 1 if there are any.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("lessons", "course/source")  # the lessons, and the assignments' instructor copies
PARAMETER_NAMES = ("DATASET", "FAST")
SKIP_DIRS = {".ipynb_checkpoints"}


def course_notebooks(root: Path = ROOT) -> list[Path]:
    """Every notebook under lessons/ and course/source/ of ``root``."""
    found = []
    for folder in FOLDERS:
        found += [f for f in sorted((root / folder).rglob("*.ipynb")) if not SKIP_DIRS & set(f.parts)]
    return found


def is_lesson(path: Path) -> bool:
    return "lessons" in Path(path).resolve().parts


def _cell_name(i: int, cell) -> str:
    first = next((line for line in cell.source.splitlines() if line.strip()), "")
    return f"cell {i} ({cell.cell_type}: {first[:40]!r})"


def _assigned_names(source: str) -> set:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def problems(path, lesson: bool | None = None) -> list[str]:
    """Everything wrong with one notebook, one message per problem ("" list if clean)."""
    path = Path(path)
    lesson = is_lesson(path) if lesson is None else lesson
    try:
        nb = nbformat.reads(path.read_text(encoding="utf-8"), as_version=nbformat.NO_CONVERT)
    except nbformat.ValidationError as exc:
        return [f"{path}: not valid nbformat: {exc.message}"]
    except Exception as exc:  # NotJSONError, UnicodeDecodeError, ...
        return [f"{path}: cannot be read as a notebook ({type(exc).__name__}: {exc})"]
    if nb.get("nbformat") != 4:
        return [f"{path}: nbformat {nb.get('nbformat')} notebook; save it as nbformat 4"]
    out = []
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        out.append(f"{path}: not valid nbformat: {exc.message}")
    if nb.metadata.get("kernelspec", {}).get("name") != "python3":
        out.append(f"{path}: notebook metadata needs kernelspec {{'name': 'python3', ...}}")
    for i, cell in enumerate(nb.cells, start=1):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            out.append(f"{path}: {_cell_name(i, cell)} has outputs; run tools/strip_outputs.py {path}")
        if cell.get("execution_count") is not None:
            out.append(f"{path}: {_cell_name(i, cell)} has execution count {cell.execution_count}; "
                       f"run tools/strip_outputs.py {path}")
        if "execution" in cell.get("metadata", {}):
            out.append(f"{path}: {_cell_name(i, cell)} has execution timing metadata; "
                       f"run tools/strip_outputs.py {path}")
    if lesson:
        first = nb.cells[0] if nb.cells else None
        if first is None or first.cell_type != "code":
            out.append(f"{path}: cell 1 must be a code cell tagged 'parameters' (it holds DATASET, FAST, ...)")
        else:
            if "parameters" not in first.get("metadata", {}).get("tags", []):
                out.append(f"{path}: {_cell_name(1, first)} must be tagged 'parameters' "
                           "(cell metadata {\"tags\": [\"parameters\"]})")
            missing = [n for n in PARAMETER_NAMES if n not in _assigned_names(first.source)]
            if missing:
                out.append(f"{path}: {_cell_name(1, first)} (the parameters cell) must set {', '.join(missing)}")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", help="notebooks (default: lessons/ and course/source/)")
    args = parser.parse_args(argv)
    files = [Path(p) for p in args.paths] or course_notebooks()
    found = [msg for f in files for msg in problems(f)]
    for msg in found:
        print(msg)
    print(f"{len(files)} notebook(s) checked, {len(found)} problem(s)", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
