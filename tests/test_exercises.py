"""The exercise notebooks: the instructor's version passes every check; the student
version (tools/make_student.py) stops in each check cell with the student's
NotImplementedError, never with a confusing error; typical mistakes get a "Not yet"
message that names the array; and make_student itself cuts regions as documented.

Each notebook run starts a fresh Jupyter kernel (nbclient), a few seconds each.
"""

import ast
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

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
MISTAKES_C = [  # a list for a tuple, an input changed in place, NaN at huge logits, a sign
    ("return dx, dW, db", "return [dx, dW, db]", ["dense_backward returned a list", "as a tuple"]),
    ("    return dy * y * (1.0 - y)", "    dy *= y * (1.0 - y)\n    return dy",
     ["sigmoid_backward changed its input dy in place"]),
    ("dlogits = (layers.sigmoid(logits) - x) / N", "dlogits = (np.exp(logits) / (1 + np.exp(logits)) - x) / N",
     ["Not yet: dlogits at logits (800, -800, 40) contains NaN or inf", "layers.sigmoid"]),
    ("dlogvar = 0.5 * (var - 1.0) / N", "dlogvar = 0.5 * (1.0 - var) / N", ["Not yet: dlogvar", "a sign is flipped"]),
]


@pytest.mark.parametrize("mistakes, last_check_words", [
    (MISTAKES_A, ["Not yet: loss"]),  # Exercise 7 uses the broken functions: it must say so too
    (MISTAKES_B, None),
    (MISTAKES_C, ["Not yet: dlogvar"]),  # the KL's flipped sign reaches Exercise 7
], ids=["wrong-values", "wrong-returns", "in-place-nan-sign"])
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


def _helpers():
    """The check helpers of the notebook's first code cells (call, returned,
    constant_factor, compare), defined here without running the rest of those cells."""
    nb = nbformat.read(EXERCISES / "gradcheck_exercises.ipynb", as_version=4)
    ns = {}
    for cell in nb.cells[:5]:
        if cell.cell_type != "code":
            continue
        tree = ast.parse(cell.source)
        tree.body = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.Assign))]
        exec(compile(tree, "helpers", "exec"), ns)
    return ns


def test_returned_says_what_was_returned():
    h = _helpers()
    z = np.ones((2, 3))
    cases = [  # (what the function returned, names, words of the message)
        ((z,), ["dx"], "returned a tuple of 1 value: the comma after it makes a tuple"),
        ([z], ["dx"], "returned a list of 1 value: the brackets make a list"),
        ((z, None), ["z"], "should return one array, z, but it returned a tuple of 2 values"),
        ([z, z, z], ["dx", "dW", "db"], "returned a list of 3 value(s); return the 3 values as a tuple"),
        ((z, z), ["dx", "dW", "db"], "should return 3 value(s), dx, dW, db, but it returned 2 values"),
        (z, ["dx", "dW", "db"], "but it returned one ndarray"),
        ((z, None), ["dmu", "dlogvar"], "returned None for dlogvar"),
    ]
    for out, names, words in cases:
        with pytest.raises(AssertionError) as info:
            h["returned"](out, names, "f")
        assert words in str(info.value) and str(info.value).startswith("Not yet: f ")
    assert h["returned"](z, ["dx"], "f") is z
    assert h["returned"]((z, 1.0), ["dx", "loss"], "f") == (z, 1.0)


def test_call_passes_copies_and_catches_a_change_in_place():
    h = _helpers()
    dy, y = np.ones((2, 3)), np.full((2, 3), 0.5)

    def backward_in_place(dy, y):
        dy *= y
        return dy

    with pytest.raises(AssertionError, match="backward_in_place changed its input dy in place"):
        h["call"](backward_in_place, dy, y)
    assert np.all(dy == 1.0), "the check's own array must stay as it was"
    assert np.all(h["call"](lambda dy, y: dy * y, dy, y) == 0.5)


def test_compare_names_a_sign_and_shows_enough_digits():
    h = _helpers()
    expected = np.arange(1.0, 7.0).reshape(2, 3)
    with pytest.raises(AssertionError, match="a sign is flipped"):
        h["compare"]("dx", -expected, expected, "the numerical gradient", hint="h")
    with pytest.raises(AssertionError, match="2 times .*a factor is missing or extra"):
        h["compare"]("dx", 2 * expected, expected, "the numerical gradient", hint="h")
    close = expected.copy()
    close[1, 2] *= 1 + 1e-6  # wrong at the pass mark, but the same to 6 digits
    with pytest.raises(AssertionError) as info:
        h["compare"]("dx", close, expected, "the numerical gradient", hint="h")
    yours, exp = re.search(r"yours (\S+), expected (\S+)\)", str(info.value)).groups()
    assert yours != exp, str(info.value)


def _solution_expressions(nb):
    """The right-hand sides of the instructor's solution lines, in a normal form."""
    found = set()
    for cell in nb.cells:
        inside = False
        for line in cell.source.splitlines():
            if line.strip().startswith("### BEGIN SOLUTION"):
                inside = True
            elif line.strip().startswith("### END SOLUTION"):
                inside = False
            elif inside:
                code = line.split("#")[0].strip()
                rhs = code.split("=", 1)[1] if re.match(r"[\w, ]+=[^=]", code) else code.removeprefix("return")
                if re.search(r"[-+*/@]", rhs):  # an expression, not a name or sigma^2 = exp(logvar)
                    found.add(_normal(rhs))
    return found


def _normal(text):
    return re.sub(r"\s+|np\.|layers\.", "", text).replace("1.0", "1")


GIVEAWAYS = ["x.T @ dy", "dy @ W.T", "sum(dy, axis=0)", "a sum, not a mean", "(exp(logvar) - 1) / 2", "sigma / 2",
             "is mu", "sigmoid(l) - x", "one for one"]


def test_student_hints_do_not_give_the_answers():
    path = EXERCISES / "gradcheck_exercises.ipynb"
    instructor = nbformat.read(path, as_version=4)
    student, _ = make_student.student_notebook(instructor, path.name)
    hints = [kw.value.value for i in tagged(student, "check")
             for node in ast.walk(ast.parse(student.cells[i].source)) if isinstance(node, ast.Call)
             for kw in node.keywords if kw.arg == "hint" and isinstance(kw.value, ast.Constant)]
    assert len(hints) >= 15, hints
    solutions = _solution_expressions(instructor)
    assert {_normal("x.T @ dy"), _normal("dz * eps * sigma / 2")} <= solutions
    for hint in hints:
        for expr in solutions:
            assert expr not in _normal(hint), f"the hint {hint!r} holds the solution {expr!r}"
        for words in GIVEAWAYS:
            assert words not in hint, f"the hint {hint!r} gives away {words!r}"


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


def test_make_student_out_above_inside_or_a_file(tmp_path, capsys):
    course = tmp_path / "course"
    src = course / "instructor"
    src.mkdir(parents=True)
    cell = nbformat.v4.new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n")
    nbformat.write(_notebook(cell), src / "a.ipynb")

    # --out above the input folder: every file is written (none is taken for an old output)
    assert make_student.main([str(src), "--out", str(course)]) == 0
    assert STUB in nbformat.read(course / "a.ipynb", as_version=4).cells[0].source

    # --out inside the input folder: an earlier student version there is not read again
    assert make_student.main([str(src), "--out", str(src / "student")]) == 0
    assert make_student.main([str(src), "--out", str(src / "student")]) == 0
    assert (src / "student" / "a.ipynb").exists() and not (src / "student" / "student").exists()

    # --out a file, or below one: one line, no traceback
    capsys.readouterr()
    for out in [src / "a.ipynb", src / "a.ipynb" / "sub"]:
        assert make_student.main([str(src), "--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("make_student: --out") and "file, not a folder" in err and err.count("\n") == 1

    # a folder without notebooks is an error, not a silent success
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    assert make_student.main([str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 1
    assert "no notebooks" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_make_student_default_out_is_the_repositorys_build_student():
    assert make_student.DEFAULT_OUT == ROOT / "build" / "student"
