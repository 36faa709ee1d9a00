"""The nbgrader course (course/): every assignment generates, grades and explains itself.

In a temporary copy of course/, in the fast setting (SCRATCHVAE_FAST=1), the module's
fixture runs what an instructor runs:

    nbgrader generate_assignment "*" --force
    nbgrader autograde "*" --force

on three submissions of every assignment: the instructor's source (solutions in it), the
unsolved release, and a copy with one typical mistake planted. The tests then read the
gradebook and the autograded notebooks: full marks for the source; 0 for the release,
with every graded cell stopped by a NotImplementedError that says what to do; partial
marks for the mistake, with the expected hint, and a later cell naming the exercise to
fix. A scan checks that no solution or hidden-test text reaches a release.

The fixture takes about a minute on two cores (a minute and a half with other work
running); the other tests take seconds. Without nbgrader (the ``course`` extra) the tests
that run it skip and the others (the notebooks' structure, the rule against calling the
answer key, the solutions to the lessons' exercises) still run.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the course extra: pip install -e .[course]")
NEEDS_NBGRADER = "the course extra: pip install -e .[course]"  # the tests that run nbgrader skip without it


def _need_nbgrader() -> None:
    """Skip without nbgrader, unless SCRATCHVAE_REQUIRE_NBGRADER=1 (CI's course step) makes
    that a failure: there a skip would pass the course without grading anything."""
    if os.environ.get("SCRATCHVAE_REQUIRE_NBGRADER", "0") == "1":
        import nbgrader  # noqa: F401  (an ImportError fails the test)
    else:
        pytest.importorskip("nbgrader", reason=NEEDS_NBGRADER)

ROOT = Path(__file__).resolve().parents[1]
COURSE = ROOT / "course"
ASSIGNMENTS = sorted(p.name for p in (COURSE / "source").iterdir() if p.is_dir())
STUB = 'raise NotImplementedError("Exercise: write your solution here")'
STUDENTS = ("instructor", "unsolved", "mistake")
GENERATED = ("release", "submitted", "autograded", "feedback", "gradebook.db", "__pycache__",
             ".ipynb_checkpoints")

# One typical mistake per assignment: the answer cell (grade_id), what to replace in it,
# and for each check cell that must then fail, words its message must contain. Every
# other check cell must still pass.
MISTAKES = {
    "a1_backprop": dict(
        cell="dense_backward",
        edits=[("db = np.sum(dy, axis=0)", "db = np.mean(dy, axis=0)")],
        failing={"test_dense_backward": ["db differs", "0.25 times the expected value in every entry",
                                         "a sum, not a mean"],
                 "test_check_dense": ["fix exercise 1.2 (dense_backward) first"]}),
    "a2_pca_autoencoders": dict(
        cell="pca_fit",
        edits=[("eigvals = lam[::-1]", "eigvals = lam"),
               ("components = U[:, ::-1][:, :q].T", "components = U[:, :q].T")],
        failing={"test_pca_fit": ["ascending order", "np.linalg.eigh"],
                 "test_pca_reconstruct": ["fix exercise 2.1 (pca_fit) first"],
                 "test_anomaly": ["fix exercise 2.1 (pca_fit) first"]}),
    "a3_em": dict(
        cell="m_step",
        edits=[("@ diff / nk[k] + reg_covar", "@ diff / N + reg_covar")],
        failing={"test_m_step": ["divide the weighted sum by N", "N_k"],
                 "test_fit_gmm": ["fix exercise 3.3 (m_step) first"]}),
    "a4_vae": dict(
        cell="kl_term",
        edits=[("kl = 0.5 * np.sum(mu**2 + var - 1.0 - logvar) / N", "kl = 0.5 * np.sum(mu**2 + var - 1.0 - logvar)"),
               ("dmu = mu / N", "dmu = mu"), ("dlogvar = 0.5 * (var - 1.0) / N", "dlogvar = 0.5 * (var - 1.0)")],
        failing={"test_kl_term": ["kl differs", "Yours is 4 times the expected value", "divide by N"],
                 "test_vae_loss_and_grads": ["fix exercise 4.2 (kl_term) first"],
                 "test_train_vae": ["fix exercise 4.2 (kl_term) first"]}),
}


def nbgrader(*args, cwd):
    """Run nbgrader with this Python's installation; fail with its output if it fails."""
    script = Path(sys.executable).with_name("nbgrader")
    cmd = [str(script) if script.exists() else "nbgrader", *args]
    env = {**os.environ, "SCRATCHVAE_FAST": "1"}
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result


def source_notebook(name, root=COURSE):
    return nbformat.read(root / "source" / name / f"{name}.ipynb", as_version=4)


def nbgrader_cells(nb, kind):
    """Cells whose nbgrader metadata marks them as kind: "grade", "solution" or "locked"."""
    return [c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get(kind)]


def grade_id(cell):
    return cell.metadata["nbgrader"]["grade_id"]


def plant(nb, name):
    """A copy of the source notebook with the assignment's typical mistake in it."""
    spec = MISTAKES[name]
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    (cell,) = [c for c in nbgrader_cells(nb, "solution") if grade_id(c) == spec["cell"]]
    for old, new in spec["edits"]:
        assert cell.source.count(old) == 1, f"{name}: {old!r} is not once in the cell {spec['cell']}"
        cell.source = cell.source.replace(old, new)
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Generate every release and autograde the three submissions of every assignment.

    Returns {(assignment, student): {grade_id: (score, max_score, ename, evalue, stdout)}}
    and the course folder."""
    _need_nbgrader()
    from nbgrader.api import Gradebook
    root = tmp_path_factory.mktemp("course") / "course"
    shutil.copytree(COURSE, root, ignore=shutil.ignore_patterns(*GENERATED))
    nbgrader("generate_assignment", "*", "--force", cwd=root)
    for name in ASSIGNMENTS:
        versions = {"instructor": source_notebook(name, root),
                    "unsolved": nbformat.read(root / "release" / name / f"{name}.ipynb", as_version=4),
                    "mistake": plant(source_notebook(name, root), name)}
        for student, nb in versions.items():
            folder = root / "submitted" / student / name
            folder.mkdir(parents=True)
            nbformat.write(nb, folder / f"{name}.ipynb")
    nbgrader("autograde", "*", "--force", cwd=root)
    out = {}
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for name in ASSIGNMENTS:
            for student in STUDENTS:
                sub = gb.find_submission(name, student)
                graded_nb = nbformat.read(root / "autograded" / student / name / f"{name}.ipynb", as_version=4)
                cells = {grade_id(c): c for c in nbgrader_cells(graded_nb, "grade")}
                rows = {}
                for g in sub.notebooks[0].grades:
                    cell = cells[g.name]
                    err = next((o for o in cell.outputs if o.output_type == "error"), None)
                    text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
                    rows[g.name] = (g.score, g.max_score, err.ename if err else None,
                                    err.evalue if err else "", text)
                out[name, student] = rows
    return out, root


# ---------------------------------------------------------------- the course as written

@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_assignment_folder_holds_notebook_checks_and_the_shared_verdict(name):
    folder = COURSE / "source" / name
    assert (folder / f"{name}.ipynb").is_file() and (folder / "checks.py").is_file()
    assert (folder / "verdict.py").read_text() == (COURSE / "verdict.py").read_text(), (
        f"{folder / 'verdict.py'} differs from course/verdict.py: edit course/verdict.py and copy it "
        "into every assignment folder")


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_source_notebook_is_an_nbgrader_assignment(name):
    nb = source_notebook(name)
    first = nb.cells[0]
    assert first.cell_type == "code" and "parameters" in first.metadata.get("tags", [])
    assert re.search(r'FAST = os\.environ\.get\("SCRATCHVAE_FAST", "0"\) == "1"', first.source)
    assert first.metadata["nbgrader"]["locked"], "the parameters cell must be read-only (the grader restores it)"
    ids = [grade_id(c) for c in nb.cells if "nbgrader" in c.metadata]
    assert len(ids) == len(set(ids)), f"{name}: repeated grade_id"
    for cell in nb.cells:
        if cell.cell_type == "code":
            meta = cell.metadata.get("nbgrader")
            assert meta and (meta["solution"] or meta["locked"]), (
                f"{name}: every code cell is an answer or read-only (the grader restores read-only cells): "
                f"{cell.source[:60]!r}")
            assert not cell.outputs and cell.execution_count is None
    for cell in nbgrader_cells(nb, "solution"):
        assert "### BEGIN SOLUTION" in cell.source and not cell.metadata["nbgrader"]["grade"]
    tests = nbgrader_cells(nb, "grade")
    assert tests and all(c.metadata["nbgrader"]["points"] > 0 and "checks." in c.source for c in tests)
    assert any("### BEGIN HIDDEN TESTS" in c.source for c in tests), f"{name} has no hidden tests"
    # the introduction states the points and the number of checks: keep it true
    intro = next(c.source for c in nb.cells if c.cell_type == "markdown" and "**Grading.**" in c.source)
    points, checks = map(int, re.search(r"\*\*Grading\.\*\* (\d+) points in (\d+) checks", intro).groups())
    assert (points, checks) == (sum(c.metadata["nbgrader"]["points"] for c in tests), len(tests))


# ---------------------------------------------------------------- generate and autograde

def test_every_release_generates(graded):
    _, root = graded
    for name in ASSIGNMENTS:
        folder = root / "release" / name
        assert sorted(p.name for p in folder.iterdir()) == sorted([f"{name}.ipynb", "checks.py", "verdict.py"])
        nb = nbformat.read(folder / f"{name}.ipynb", as_version=4)
        for cell in nbgrader_cells(nb, "solution"):
            assert STUB in cell.source, f"{name}: {grade_id(cell)} has no stub"


def _split(source):
    """(lines inside solution or hidden-test regions, lines outside them), stripped."""
    inside, outside, depth = [], [], 0
    for line in source.splitlines():
        s = line.strip()
        if s.startswith(("### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS")):
            depth += 1
        elif s.startswith(("### END SOLUTION", "### END HIDDEN TESTS")):
            depth -= 1
        else:
            (inside if depth else outside).append(s)
    return inside, outside


def test_no_solution_or_hidden_test_text_in_any_release(graded):
    _, root = graded
    secret, public = set(), set()
    for name in ASSIGNMENTS:
        for cell in source_notebook(name, root).cells:
            inside, outside = _split(cell.source)
            secret |= {s for s in inside if len(s) >= 12 and not s.startswith("#")}
            public |= set(outside)
    secret -= public  # a hidden test may repeat a visible line
    assert len(secret) > 100
    for path in sorted((root / "release").rglob("*")):
        if not path.is_file():
            continue
        text = path.read_text()
        if path.suffix == ".ipynb":
            text = "\n".join(c.source for c in nbformat.reads(text, as_version=4).cells)
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
            assert marker not in text, f"{path.relative_to(root)} holds {marker!r}"
        found = sorted(secret & {line.strip() for line in text.splitlines()})
        assert not found, f"{path.relative_to(root)} holds solution or hidden-test lines: {found[:5]}"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_instructor_source_gets_full_marks(graded, name):
    rows = graded[0][name, "instructor"]
    failed = {k: v[3] for k, v in rows.items() if v[0] != v[1]}
    assert not failed, f"{name}: the instructor's source lost points: {failed}"
    assert all("Correct:" in v[4] for v in rows.values())


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_unsolved_release_gets_zero_and_says_not_implemented_in_every_cell(graded, name):
    rows = graded[0][name, "unsolved"]
    assert rows and sum(v[0] for v in rows.values()) == 0
    for cell, (_, _, ename, evalue, _) in rows.items():
        assert ename == "NotImplementedError", f"{name}/{cell} stopped with {ename}: {evalue}"
        assert evalue == "Exercise: write your solution here" or re.match(
            r"exercise \d\.\d \(\w+\) is not written yet", evalue), f"{name}/{cell}: {evalue!r}"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_a_typical_mistake_gets_partial_marks_and_its_hint(graded, name):
    rows = graded[0][name, "mistake"]
    failing = MISTAKES[name]["failing"]
    for cell, (score, max_score, ename, evalue, _) in rows.items():
        if cell in failing:
            assert score == 0 and ename == "AssertionError", f"{name}/{cell}: {ename} {evalue}"
            for words in failing[cell]:
                assert words in evalue, f"{name}/{cell}: {words!r} not in {evalue!r}"
        else:
            assert score == max_score, f"{name}/{cell} should pass with the mistake in another exercise: {evalue}"
    total, most = sum(v[0] for v in rows.values()), sum(v[1] for v in rows.values())
    assert 0 < total < most


# ---------------------------------------------------------------- the rule and the tool

def test_an_answer_that_calls_the_answer_key_does_not_count():
    script = r'''
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import verdict
from scratchvae import losses
from scratchvae.losses import kl_std_normal as kl_ref

def honest(mu, logvar):
    return 0.5 * np.sum(mu**2 + np.exp(logvar) - 1.0 - logvar) / mu.shape[0]

def through_global(mu, logvar):
    return losses.kl_std_normal(mu, logvar)

def through_alias(mu, logvar):
    return kl_ref(mu, logvar)

def through_import(mu, logvar):
    import scratchvae.losses
    return scratchvae.losses.kl_std_normal(mu, logvar)

def helper(mu, logvar):
    return kl_ref(mu, logvar)

def through_helper(mu, logvar):
    return helper(mu, logvar)

def through_default(mu, logvar, f=kl_ref):
    return f(mu, logvar)

assert verdict.key_uses(honest) == []
for f in (through_global, through_alias, through_import, through_helper, through_default):
    assert verdict.key_uses(f), f.__name__
    try:
        verdict.own_work(f)
    except AssertionError as exc:
        assert "uses the answer key" in str(exc) and "NumPy alone" in str(exc), exc
    else:
        raise SystemExit(f.__name__ + " passed own_work")
print("ok")
'''
    result = subprocess.run([sys.executable, "-c", script, str(COURSE)], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stdout + result.stderr


def test_make_student_is_a_wrapper_around_nbgrader(tmp_path):
    _need_nbgrader()
    course = tmp_path / "course"
    shutil.copytree(COURSE, course, ignore=shutil.ignore_patterns(*GENERATED))
    tool = [sys.executable, str(ROOT / "tools" / "make_student.py")]
    done = subprocess.run([*tool, "a1_backprop", "--course", str(course), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    nb = nbformat.read(tmp_path / "out" / "a1_backprop" / "a1_backprop.ipynb", as_version=4)
    assert all(STUB in c.source for c in nbgrader_cells(nb, "solution"))
    assert (course / "release" / "a1_backprop" / "checks.py").is_file()
    bad = subprocess.run([*tool, "a9_nothing", "--course", str(course)], capture_output=True, text=True)
    assert bad.returncode == 1 and "unknown assignment(s) a9_nothing" in bad.stderr


@pytest.mark.parametrize("n", range(1, 7))
def test_every_lesson_has_exercise_solutions(n):
    found = sorted((COURSE / "solutions").glob(f"lesson_{n:02d}_exercises.*"))
    assert len(found) == 1, f"course/solutions/lesson_{n:02d}_exercises.* should be one file"
    text = found[0].read_text()
    for k in range(1, 7):
        assert re.search(rf"^## Exercise {k}\b", text, flags=re.M), f"{found[0].name} has no '## Exercise {k}'"
