"""Write the student copies of the course's assignments: a thin wrapper around nbgrader.

    python tools/make_student.py                          # every assignment, into course/release/
    python tools/make_student.py a4_vae --out build/student/

For each assignment (a folder of ``course/source/``; all of them by default) it runs, in
the course folder,

    nbgrader generate_assignment <assignment> --force

which writes ``course/release/<assignment>/``: the notebook with every solution replaced
by ``raise NotImplementedError("Exercise: write your solution here")``, hidden tests
removed, check cells locked, outputs cleared, and the assignment's ``checks.py`` and
``verdict.py`` beside it (nbgrader also records the assignment in the course's
gradebook). With ``--out`` the release folders are then copied to ``OUT/<assignment>/``.
That is all: nbgrader is the one way to make a student copy, and this command exists so
that the old ``make_student`` keeps working. ``--course`` names another nbgrader course
folder (default: ``course/`` in this repository).

Needs the ``course`` extra: ``pip install -e ".[course]"``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COURSE = ROOT / "course"


def assignments(course: Path) -> list[str]:
    """The assignments of a course: the folders of ``course/source/``."""
    source = course / "source"
    return sorted(p.name for p in source.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))) \
        if source.is_dir() else []


def nbgrader_command() -> list[str]:
    """How to run nbgrader with this Python (its script sits beside the interpreter)."""
    script = Path(sys.executable).with_name("nbgrader")
    if script.exists():
        return [str(script)]
    found = shutil.which("nbgrader")
    if found is None:
        raise FileNotFoundError('nbgrader is not installed: pip install -e ".[course]"')
    return [found]


def make_student(names=None, out=None, course=COURSE) -> list[Path]:
    """Generate the release of each named assignment (all by default); copy it under
    ``out`` if given. Returns the folders written. Raises ValueError for an unknown
    assignment and RuntimeError if nbgrader fails."""
    course = Path(course).resolve()
    known = assignments(course)
    if not known:
        raise ValueError(f"{course} has no assignments (no folders in {course / 'source'})")
    names = list(names or known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown assignment(s) {', '.join(unknown)}; the course has {', '.join(known)}")
    written = []
    for name in names:
        result = subprocess.run([*nbgrader_command(), "generate_assignment", name, "--force"],
                                cwd=course, capture_output=True, text=True)
        release = course / "release" / name
        if result.returncode != 0 or not release.is_dir():
            raise RuntimeError(f"nbgrader generate_assignment {name} failed:\n{result.stdout}{result.stderr}")
        if out is None:
            written.append(release)
            continue
        dest = Path(out).resolve() / name
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(release, dest)
        written.append(dest)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("assignments", nargs="*", help="assignment names (default: all of course/source/)")
    parser.add_argument("--out", help="copy each release to OUT/<assignment>/ (default: leave it in course/release/)")
    parser.add_argument("--course", default=COURSE, help="the nbgrader course folder (default: course/)")
    args = parser.parse_args(argv)
    try:
        written = make_student(args.assignments, args.out, args.course)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"make_student: {exc}", file=sys.stderr)
        return 1
    for folder in written:
        print(f"wrote {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
