"""The exercise notebooks: the instructor's version passes every check; the student
version (tools/make_student.py) stops in each check cell with the student's
NotImplementedError, never with a confusing error; typical mistakes get a "Not yet"
message that names the array; and make_student itself cuts regions as documented.

Each notebook run starts a fresh Jupyter kernel (nbclient), a few seconds each.
"""

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import load_tool

nbformat = pytest.importorskip("nbformat", reason="the lessons extra: pip install -e .[lessons]")
nbclient = pytest.importorskip("nbclient", reason="the lessons extra: pip install -e .[lessons]")
from nbclient.exceptions import CellExecutionError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = ROOT / "exercises"
NOTEBOOKS = sorted(EXERCISES.rglob("*.ipynb"))
STUB_MESSAGE = "Exercise: write your solution here"


make_student = load_tool("make_student")


def run_cells(nb, cwd):
    """Execute every code cell in order in one fresh kernel, going on after errors.

    Returns {cell index: (ename, evalue)} for the cells that raised, and the executed
    notebook (outputs filled in).
    """
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(cwd)}})
    errors = {}
    with client.setup_kernel():
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            try:
                client.execute_cell(cell, i)
            except CellExecutionError as exc:
                errors[i] = (exc.ename, exc.evalue)
    return errors, nb


def tagged(nb, tag):
    return [i for i, c in enumerate(nb.cells) if tag in c.metadata.get("tags", [])]


def stdout(cell):
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def test_there_are_exercise_notebooks():
    assert NOTEBOOKS, "no notebooks in exercises/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_instructor_version_passes_every_check(path):
    nb = nbformat.read(path, as_version=4)
    checks = tagged(nb, "check")
    assert checks, f"{path.name} has no cells tagged 'check'"
    errors, nb = run_cells(nb, path.parent)
    assert not errors, f"{path.name}: cells raised {errors}"
    for i in checks:
        out = stdout(nb.cells[i])
        assert "Correct:" in out and "Not yet" not in out, f"{path.name} cell {i + 1} printed {out!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_version_stops_with_not_implemented_in_every_check(path, tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "make_student.py"), str(EXERCISES),
                             "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    student_path = tmp_path / path.relative_to(EXERCISES)
    nb = nbformat.read(student_path, as_version=4)
    text = student_path.read_text()
    assert "### BEGIN SOLUTION" not in text and "### END SOLUTION" not in text
    assert not tagged(nb, "instructor"), "cells tagged 'instructor' must not reach students"
    assert all(c.outputs == [] and c.execution_count is None for c in nb.cells if c.cell_type == "code")
    checks = tagged(nb, "check")

    errors, _ = run_cells(nb, student_path.parent)

    assert errors, "the student version ran without an error: a solution was left in"
    first = min(errors)
    assert errors[first] == ("NotImplementedError", STUB_MESSAGE), \
        f"the first error (cell {first + 1}) is {errors[first]}, not the student's NotImplementedError"
    assert first in checks, f"the first error is in cell {first + 1}, not in a check cell"
    # Every check fails the same way, not with a NameError or a shape error left behind
    # by an earlier exercise; and no other cell fails at all.
    assert set(errors) == set(checks), f"errors in cells {sorted(errors)}, checks are {checks}"
    for i in checks:
        assert errors[i] == ("NotImplementedError", STUB_MESSAGE), f"cell {i + 1}: {errors[i]}"


# Typical mistakes swapped into the instructor's solutions: each check must stop with
# "Not yet: <what is wrong>". (original, mistake, words the message must hold)
MISTAKES_A = [  # wrong values, one per exercise 1-6
    ("db = np.sum(dy, axis=0)", "db = np.mean(dy, axis=0)", ["Not yet: db", "0.25 times"]),
    ("return dy * y * (1.0 - y)", "return np.sum(dy * y * (1.0 - y), axis=0)",
     ["Not yet: dx has shape (6,) but should have shape (4, 6)"]),
    ("loss = np.sum(layers.softplus(logits) - x * logits) / N",
     "loss = np.sum(np.log(1 + np.exp(logits)) - x * logits) / N", ["Not yet: loss at logits", "NaN or inf"]),
    ("var = np.exp(logvar)  ", "var = np.exp(2 * logvar)  ", ["Not yet: kl", "exp(logvar)"]),
    ("return mu + np.exp(0.5 * logvar) * eps", "return mu + np.exp(logvar) * eps",
     ["Not yet: z", "sigma = exp(logvar / 2)"]),
    ("m_hat = m / (1.0 - b1**t)", "m_hat = m", ["Not yet: p after step 1", "bias correction"]),
]
MISTAKES_B = [  # wrong returns (a message, not a TypeError), and Exercise 7 on its own
    ("    return dy * y * (1.0 - y)", "    dy * y * (1.0 - y)", ["returned None: is a `return` missing?"]),
    ("    return p, m, v\n", "    return p, m\n", ["should return 3 value(s), p, m, v, but it returned 2 values"]),
    ("return rec + kl, dmu_rec + dmu_kl,", "return rec + kl, dmu_rec,", ["Not yet: dmu", "KL"]),
]


@pytest.mark.parametrize("mistakes, last_check_words", [
    (MISTAKES_A, ["Not yet: loss"]),  # Exercise 7 uses the broken functions: it must say so too
    (MISTAKES_B, None),
], ids=["wrong-values", "wrong-returns"])
def test_typical_mistakes_get_a_plain_words_message(mistakes, last_check_words):
    path = EXERCISES / "gradcheck_exercises.ipynb"
    nb = nbformat.read(path, as_version=4)
    checks = tagged(nb, "check")
    expected = {}  # check cell index -> words its message must hold
    for original, wrong, words in mistakes:
        hits = [i for i in tagged(nb, "exercise") if original in nb.cells[i].source]
        assert len(hits) == 1, f"{original!r} should occur in exactly one exercise cell, found {hits}"
        nb.cells[hits[0]].source = nb.cells[hits[0]].source.replace(original, wrong)
        expected[min(c for c in checks if c > hits[0])] = words
    if last_check_words:
        expected[max(checks)] = last_check_words

    errors, _ = run_cells(nb, path.parent)

    for i, words in expected.items():
        assert i in errors, f"cell {i + 1}: the check passed a wrong answer"
        ename, evalue = errors[i]
        assert ename == "AssertionError", (i, ename, evalue)
        for w in words:
            assert w in evalue, f"cell {i + 1}: {w!r} not in the message {evalue!r}"
    assert set(errors) == set(expected), {i: errors[i] for i in set(errors) - set(expected)}


# ---------------------------------------------------------------- make_student itself

STUB = 'raise NotImplementedError("Exercise: write your solution here")'


def test_strip_solutions_keeps_indentation_and_everything_else():
    src = (
        "def f(x):\n"
        '    """doc"""\n'
        "    y = 2\n"
        "    ### BEGIN SOLUTION\n"
        "    return x * y\n"
        "    ### END SOLUTION\n"
        "\n"
        "def g(x):\n"
        "    if x:\n"
        "        ### BEGIN SOLUTION (the hard part)\n"
        "        return 1\n"
        "        ### END SOLUTION\n"
        "    return 0\n"
    )
    new, n = make_student.strip_solutions(src)
    assert n == 2
    assert new == (
        "def f(x):\n"
        '    """doc"""\n'
        "    y = 2\n"
        f"    {STUB}\n"
        "\n"
        "def g(x):\n"
        "    if x:\n"
        f"        {STUB}\n"
        "    return 0\n"
    )
    ns = {}
    exec(new, ns)
    with pytest.raises(NotImplementedError, match="Exercise: write your solution here"):
        ns["f"](1)
    assert ns["g"](0) == 0


@pytest.mark.parametrize("src, words", [
    ("### BEGIN SOLUTION\nx = 1\n", "never closed"),
    ("x = 1\n### END SOLUTION\n", "without a ### BEGIN SOLUTION"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", "inside another"),
    ("def f():\n### BEGIN SOLUTION\n    return 1\n### END SOLUTION\n", "invalid Python"),
])
def test_strip_solutions_rejects_broken_markers(src, words):
    with pytest.raises(make_student.SolutionMarkerError, match=words) as info:
        make_student.strip_solutions(src, where="ex.ipynb, cell 3")
    assert "ex.ipynb, cell 3" in str(info.value)


def _notebook(*cells):
    nb = nbformat.v4.new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def test_make_student_cli_writes_stripped_copies_and_refuses_bad_input(tmp_path):
    src = tmp_path / "ex"
    (src / "sub").mkdir(parents=True)
    solved = nbformat.v4.new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n")
    solved.outputs = [nbformat.v4.new_output("stream", text="1\n")]
    solved.execution_count = 3
    note = nbformat.v4.new_markdown_cell("teacher only")
    note.metadata["tags"] = ["instructor"]
    nbformat.write(_notebook(nbformat.v4.new_markdown_cell("# Ex"), note, solved), src / "sub" / "a.ipynb")
    (src / "data.txt").write_text("kept")
    out = tmp_path / "student"

    assert make_student.main([str(src), "--out", str(out)]) == 0
    nb = nbformat.read(out / "sub" / "a.ipynb", as_version=4)
    assert [c.source for c in nb.cells] == ["# Ex", f"def f():\n    {STUB}\n"]
    assert nb.cells[1].outputs == [] and nb.cells[1].execution_count is None
    assert (out / "data.txt").read_text() == "kept"
    assert "### BEGIN" in (src / "sub" / "a.ipynb").read_text()  # the instructor's copy is untouched

    assert make_student.main([str(src), "--out", str(src)]) == 1  # would overwrite the solutions
    bad = _notebook(nbformat.v4.new_markdown_cell("### BEGIN SOLUTION\nsecret\n### END SOLUTION"))
    nbformat.write(bad, tmp_path / "bad.ipynb")
    assert make_student.main([str(tmp_path / "bad.ipynb"), "--out", str(tmp_path / "o2")]) == 1
    assert not (tmp_path / "o2").exists()  # nothing written for a bad input
