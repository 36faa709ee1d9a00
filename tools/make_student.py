"""Write student versions of exercise notebooks: the solutions cut out.

    python tools/make_student.py exercises/ --out build/student/

In every code cell, each region

    ### BEGIN SOLUTION
    ...the instructor's code...
    ### END SOLUTION

is replaced by one line, at the indentation of the BEGIN line,

    raise NotImplementedError("Exercise: write your solution here")

so a student's function stops with that message until they fill it in. Everything else
is kept, except that outputs and execution counts are stripped and cells tagged
``instructor`` are left out. Inputs are notebooks or folders (searched recursively for
``*.ipynb``; the folder structure is kept under --out, by default build/student in the
repository). Python files (``*.py``) in a folder get the same treatment; other files are
copied unchanged. A folder with no notebook in it is an error.

A region left open, an END without a BEGIN, a nested BEGIN, or markers in a Markdown
cell are errors that name the file and the cell, and nothing is written for that file.
"""

from __future__ import annotations

import argparse
import ast
import shutil
import sys
from pathlib import Path

import nbformat

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB = 'raise NotImplementedError("Exercise: write your solution here")'
DROP_TAG = "instructor"
SKIP_DIRS = {".ipynb_checkpoints", "__pycache__"}
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "build" / "student"


class SolutionMarkerError(ValueError):
    """The solution markers of a cell are not well formed."""


def strip_solutions(source: str, where: str = "cell") -> tuple[str, int]:
    """Replace each BEGIN/END SOLUTION region of ``source`` by the stub line.

    Inputs:
    - source: the text of a code cell or Python file.
    - where: how to name this text in an error message, e.g. "ex.ipynb, cell 4".
    Returns:
    - the new text and the number of regions replaced.
    """
    out, inside, n = [], False, 0
    for lineno, line in enumerate(source.splitlines(), start=1):
        marker = line.strip()
        if marker.startswith(BEGIN):
            if inside:
                raise SolutionMarkerError(f"{where}, line {lineno}: {BEGIN} inside another solution region")
            inside, n = True, n + 1
            indent = line[: len(line) - len(line.lstrip())]
            out.append(indent + STUB)
        elif marker.startswith(END):
            if not inside:
                raise SolutionMarkerError(f"{where}, line {lineno}: {END} without a {BEGIN} before it")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise SolutionMarkerError(f"{where}: {BEGIN} is never closed by {END}")
    new = "\n".join(out) + ("\n" if source.endswith("\n") and out else "")
    _check_still_parses(source, new, where)
    return new, n


def _check_still_parses(old: str, new: str, where: str) -> None:
    """If the instructor's code was valid Python, the student's must be too."""
    try:
        ast.parse(old)
    except SyntaxError:
        return  # IPython magics and the like: nothing to compare
    try:
        ast.parse(new)
    except SyntaxError as exc:
        raise SolutionMarkerError(
            f"{where}: removing the solution leaves invalid Python ({exc.msg}, line {exc.lineno}); "
            "put the markers inside a function body, at the indentation of the code they enclose"
        ) from None


def student_notebook(nb, name: str = "notebook"):
    """The student version of a notebook (a new object; ``nb`` is not changed).

    Returns the notebook and the number of solution regions removed.
    """
    nb = nbformat.from_dict(nb)  # a deep copy
    cells, total = [], 0
    for i, cell in enumerate(nb.cells, start=1):
        if DROP_TAG in cell.get("metadata", {}).get("tags", []):
            continue
        where = f"{name}, cell {i}"
        if cell.cell_type == "code":
            cell.source, n = strip_solutions(cell.source, where)
            total += n
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)
        elif BEGIN in cell.source or END in cell.source:
            raise SolutionMarkerError(f"{where}: solution markers only work in code cells, "
                                      f"this is a {cell.cell_type} cell")
        cells.append(cell)
    nb.cells = cells
    return nb, total


def _inputs(paths, out: Path):
    """(file, its path relative to the output folder) for every input file. When ``out``
    lies inside an input folder, the files under ``out`` (an earlier student version) are
    skipped; an ``out`` above an input folder, or equal to it, skips nothing."""
    for p in map(Path, paths):
        if p.is_dir():
            root = p.resolve()
            out_inside = root in out.parents  # out strictly below this input folder
            found = []
            for f in sorted(p.rglob("*")):
                rel = f.relative_to(p)
                if out_inside and out in (root / rel).parents:
                    continue
                if f.is_file() and not SKIP_DIRS & set(rel.parts):
                    found.append((f, rel))
            if not any(f.suffix == ".ipynb" for f, _ in found):
                skipped = f" (files under --out {out} are left out)" if out_inside else ""
                raise FileNotFoundError(f"no notebooks (*.ipynb) in the folder {p}{skipped}")
            yield from found
        elif p.is_file():
            yield p, Path(p.name)
        else:
            raise FileNotFoundError(f"no such notebook or folder: {p}")


def make_student(paths, out) -> list[tuple[Path, int]]:
    """Write student versions of ``paths`` (notebooks or folders) under ``out``.

    Returns (written file, regions removed) pairs; raises SolutionMarkerError,
    FileNotFoundError or ValueError before writing anything if an input or ``out`` is bad.
    """
    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder: name a folder (it is created if need be)")
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"--out {out} lies under {parent}, which is a file, not a folder")
    jobs = []
    for src, rel in _inputs(paths, out):
        if (out / rel).resolve() == src.resolve():
            raise ValueError(f"--out {out} would overwrite the instructor's {src}: choose another folder")
        if src.suffix == ".ipynb":
            nb, n = student_notebook(nbformat.read(src, as_version=4), str(src))
            nbformat.validate(nb)
            jobs.append((out / rel, n, nb))
        elif src.suffix == ".py":
            text, n = strip_solutions(src.read_text(), str(src))
            jobs.append((out / rel, n, text))
        else:
            jobs.append((out / rel, 0, src))
    written = []
    for dest, n, content in jobs:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copyfile(content, dest)
        elif isinstance(content, str):
            dest.write_text(content)
        else:
            nbformat.write(content, dest)
        written.append((dest, n))
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="notebooks or folders of instructor notebooks")
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help=f"output folder (default {DEFAULT_OUT.parent.name}/{DEFAULT_OUT.name} "
                             "in the repository)")
    args = parser.parse_args(argv)
    try:
        written = make_student(args.paths, args.out)
    except (SolutionMarkerError, ValueError, OSError) as exc:
        print(f"make_student: {exc}", file=sys.stderr)
        return 1
    for dest, n in written:
        if dest.suffix in (".ipynb", ".py"):
            note = f"{n} solution(s) removed" if n else "no solutions in it (copied as is)"
            print(f"wrote {dest} ({note})")
        else:
            print(f"copied {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
