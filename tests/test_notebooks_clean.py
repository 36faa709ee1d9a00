"""Notebooks in git are clean (tools/check_clean_notebooks.py), the checker and
tools/strip_outputs.py do what they say, and lessons/README.md indexes every lesson."""

import re
from pathlib import Path

import pytest
from conftest import load_tool

nbformat = pytest.importorskip("nbformat", reason="the lessons extra: pip install -e .[lessons]")

ROOT = Path(__file__).resolve().parents[1]


check_clean = load_tool("check_clean_notebooks")
strip_outputs = load_tool("strip_outputs")
NOTEBOOKS = check_clean.course_notebooks()


def test_the_course_has_notebooks():
    assert (ROOT / "lessons" / "01_backprop_and_gradcheck.ipynb") in NOTEBOOKS
    assert any(p.parent.parent.name == "source" and p.parent.parent.parent.name == "course" for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notebook_is_clean(path):
    found = check_clean.problems(path)
    assert not found, "\n".join(found)


def test_lesson_names_are_numbered():
    for path in (ROOT / "lessons").glob("*.ipynb"):
        assert re.fullmatch(r"(\d\d|appendix)_[a-z0-9_]+\.ipynb", path.name), (
            f"{path.name}: name lessons NN_topic.ipynb, and appendices appendix_topic.ipynb")


def test_readme_indexes_every_lesson():
    readme = (ROOT / "lessons" / "README.md").read_text()
    for path in (ROOT / "lessons").glob("*.ipynb"):
        assert path.name in readme, f"lessons/README.md does not list {path.name}"


# ---------------------------------------------------------------- the tools themselves

def _lesson(first_source="import os\nDATASET = 'digits'\nFAST = False", tags=("parameters",)):
    first = nbformat.v4.new_code_cell(first_source)
    if tags:
        first.metadata["tags"] = list(tags)
    nb = nbformat.v4.new_notebook(cells=[first, nbformat.v4.new_markdown_cell("# T"),
                                         nbformat.v4.new_code_cell("print(1)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def _dirty(nb):
    cell = nb.cells[2]
    cell.outputs = [nbformat.v4.new_output("stream", text="1\n")]
    cell.execution_count = 7
    cell.metadata["execution"] = {"iopub.status.idle": "2024-01-01T00:00:00Z"}
    return nb


def test_checker_accepts_a_clean_lesson(tmp_path):
    nbformat.write(_lesson(), tmp_path / "01_x.ipynb")
    assert check_clean.problems(tmp_path / "01_x.ipynb", lesson=True) == []


def test_checker_names_file_and_cell_of_each_problem(tmp_path):
    path = tmp_path / "01_x.ipynb"
    nbformat.write(_dirty(_lesson()), path)
    found = check_clean.problems(path, lesson=True)
    assert len(found) == 3
    assert all(str(path) in m and "cell 3 (code: 'print(1)')" in m for m in found)
    assert any("has outputs" in m for m in found)
    assert any("execution count 7" in m for m in found)
    assert any("execution timing metadata" in m for m in found)
    assert check_clean.main([str(path)]) == 1


@pytest.mark.parametrize("make, words", [
    (lambda: _lesson(tags=()), "must be tagged 'parameters'"),
    (lambda: _lesson(first_source="import os\nFAST = True"), "must set DATASET"),
    (lambda: nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T")],
                                      metadata={"kernelspec": {"name": "python3", "display_name": "P"}}),
     "cell 1 must be a code cell"),
])
def test_checker_wants_a_parameters_cell_in_lessons(tmp_path, make, words):
    nbformat.write(make(), tmp_path / "01_x.ipynb")
    found = check_clean.problems(tmp_path / "01_x.ipynb", lesson=True)
    assert len(found) == 1 and words in found[0], found
    assert check_clean.problems(tmp_path / "01_x.ipynb", lesson=False) == []  # assignments need none


def test_checker_reports_invalid_notebooks(tmp_path):
    (tmp_path / "broken.ipynb").write_text("{ not json")
    (tmp_path / "bad.ipynb").write_text('{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, '
                                        '"cells": [{"cell_type": "code", "source": ""}]}')
    assert "cannot be read as a notebook" in check_clean.problems(tmp_path / "broken.ipynb")[0]
    found = check_clean.problems(tmp_path / "bad.ipynb", lesson=False)
    assert len(found) == 1 and "not valid nbformat" in found[0] and "metadata" in found[0], found
    nb = _lesson()
    del nb.metadata["kernelspec"]
    nbformat.write(nb, tmp_path / "no_kernel.ipynb")
    found = check_clean.problems(tmp_path / "no_kernel.ipynb", lesson=True)
    assert len(found) == 1 and "kernelspec" in found[0], found


def test_strip_outputs_cleans_in_place_and_keeps_sources_and_tags(tmp_path):
    path = tmp_path / "01_x.ipynb"
    nbformat.write(_dirty(_lesson()), path)
    before = nbformat.read(path, as_version=4)

    assert strip_outputs.main([str(tmp_path)]) == 0

    after = nbformat.read(path, as_version=4)
    assert check_clean.problems(path, lesson=True) == []
    assert [c.source for c in after.cells] == [c.source for c in before.cells]
    assert after.cells[0].metadata["tags"] == ["parameters"]
    mtime = path.stat().st_mtime_ns
    assert strip_outputs.main([str(path)]) == 0  # already clean: not rewritten
    assert path.stat().st_mtime_ns == mtime
