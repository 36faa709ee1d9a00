r"""The equation index: every numbered equation of the lessons is cited in the code.

Three sources must agree (issue 14, item 5).

1. The lessons. A lesson is a notebook ``lessons/NN_*.ipynb`` whose file name starts with
   two digits and an underscore; NN is its number (``04_em.ipynb`` is lesson 4), so a new
   notebook such as ``07_appendix.ipynb`` is picked up by itself. Its numbered equations
   are the labels of ``\tag{...}`` in its Markdown cells: ``\tag{6}``, ``\tag{9a}``. Two
   notebooks with one number form one lesson; a label may occur once per lesson, and
   must read <digits><optional lowercase letter>.

2. The code: every ``.py`` file under ``scratchvae/``, all of its text (comments,
   docstrings, strings). A citation is

       L<k> (<tag>)[ <sep> (<tag>)]...

   that is: ``L`` at the start of a word, the lesson number k, one or more spaces, then
   one or more parenthesised tags (<digits><optional lowercase letter>) joined by ``-``,
   ``,`` or ``and`` (spaces allowed around the joiner); all on one line. Every
   parenthesised tag counts: ``L4 (6)`` cites (6); ``L4 (4)-(5)``, ``L4 (4), (5)`` and
   ``L4 (4) and (5)`` cite (4) and (5); ``L4 (4)-(7)`` cites (4) and (7) only, so list
   the ones between to cite them too.

   A "(N)" (N: one or two digits, an optional letter) in a comment or docstring that is
   not part of a citation is a bare equation number (a module's own numbering, or a
   lesson's number without its lesson) and fails. "(" right after a name or a closing
   bracket, as in ``RNG(0)``, is a call, not a number; "(1989)" is a year.

3. The index: the table under the heading "Equation index" in ``lessons/README.md``, one
   row per lesson equation, exactly:

       | k | (tag) | what it is | `path/to/file.py` (or a link to it) | `name` |

   ``name`` is defined in that file: a top-level function, class or constant, or
   ``Class.method``; and its definition (or the comment lines right above it) cites
   the equation.

The checks are plain functions of the directories they read, so the tests at the end
feed them a fake lesson, package and index to show that each check can fail.
"""

from __future__ import annotations

import ast
import io
import json
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSONS = ROOT / "lessons"
PACKAGE = ROOT / "scratchvae"
README = LESSONS / "README.md"

LESSON_FILE = re.compile(r"^(\d\d)_.*\.ipynb$")
TAG = r"\d+[a-z]?"
TAG_LABEL = re.compile(r"\\tag\*?\{([^{}]*)\}")
CITATION = re.compile(rf"\bL(\d+)[ \t]+(\({TAG}\)(?:[ \t]*(?:-|,|and)[ \t]*\({TAG}\))*)")
PAREN_TAG = re.compile(rf"\(({TAG})\)")
BARE_NUMBER = re.compile(r"(?<![\w)\]])\((\d{1,2}[a-z]?)\)")  # (1989) is a year
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*$")
INDEX_HEADING = "Equation index"
FIX_HINT = ("Add a comment `# L{k} ({tag}) ...` beside the line that computes it (for an "
            "identity or a bound, where the code relies on it), and its row in the Equation "
            "index of lessons/README.md.")


def tag_key(tag: str):
    """Sort tags as the lessons number them: 2 < 9a < 9b < 10."""
    m = re.fullmatch(r"(\d+)(.*)", tag)
    return (int(m.group(1)), m.group(2)) if m else (10 ** 9, tag)


def rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


# ---- 1. the lessons ------------------------------------------------------------------

def lesson_files(lessons_dir: Path) -> dict[int, list[Path]]:
    """Lesson number -> its notebooks, found by the NN_ prefix of the file name."""
    found: dict[int, list[Path]] = {}
    for path in sorted(lessons_dir.glob("*.ipynb")):
        m = LESSON_FILE.match(path.name)
        if m:
            found.setdefault(int(m.group(1)), []).append(path)
    return found


def notebook_tags(path: Path):
    """(label, cell index, a few words of the equation) for each \\tag in Markdown cells."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "markdown":
            continue
        src = cell.get("source", "")
        src = "".join(src) if isinstance(src, list) else src
        for m in TAG_LABEL.finditer(src):
            start = src.rfind("$$", 0, m.start())
            words = " ".join(src[start + 2 if start >= 0 else 0:m.start()].split())
            out.append((m.group(1).strip(), i, words[:70] + (" ..." if len(words) > 70 else "")))
    return out


def lesson_equations(lessons_dir: Path):
    """All numbered equations: {(k, tag): (notebook, cell index, words)}, and problems.

    A problem is a label that occurs twice in one lesson or that a citation cannot name.
    """
    equations, problems = {}, []
    for k, paths in lesson_files(lessons_dir).items():
        for path in paths:
            for tag, cell, words in notebook_tags(path):
                if not re.fullmatch(TAG, tag):
                    problems.append(f"{path.name} cell {cell}: \\tag{{{tag}}} is not <digits>"
                                    "<optional lowercase letter>, so code cannot cite it; renumber it")
                elif (k, tag) in equations:
                    first = equations[(k, tag)]
                    problems.append(f"lesson {k}: \\tag{{{tag}}} occurs twice, in {first[0].name} cell "
                                    f"{first[1]} and {path.name} cell {cell}; renumber one")
                else:
                    equations[(k, tag)] = (path, cell, words)
    return equations, problems


# ---- 2. the code ---------------------------------------------------------------------

def citations_in(text: str):
    """[(line number, k, tag)] for every citation in the text (module docstring: grammar)."""
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        for m in CITATION.finditer(line):
            k = int(m.group(1))
            out.extend((lineno, k, tag) for tag in PAREN_TAG.findall(m.group(2)))
    return out


def package_files(package_dir: Path) -> list[Path]:
    return sorted(p for p in package_dir.rglob("*.py") if "__pycache__" not in p.parts)


def code_citations(package_dir: Path) -> dict[tuple[int, str], list[tuple[Path, int]]]:
    """{(k, tag): [(file, line), ...]} over every .py file of the package."""
    cited: dict = {}
    for path in package_files(package_dir):
        for lineno, k, tag in citations_in(path.read_text(encoding="utf-8")):
            cited.setdefault((k, tag), []).append((path, lineno))
    return cited


def uncited(equations: dict, cited: dict, root: Path) -> list[str]:
    """A message for each lesson equation that no code cites."""
    out = []
    for (k, tag) in sorted(equations, key=lambda e: (e[0], tag_key(e[1]))):
        if (k, tag) not in cited:
            path, cell, words = equations[(k, tag)]
            out.append(f"L{k} ({tag}): {rel(path, root)} (cell {cell}) numbers an equation that no "
                       f"code in scratchvae/ cites [{words}]. " + FIX_HINT.format(k=k, tag=tag))
    return out


def dangling(equations: dict, cited: dict, root: Path, lessons_dir: Path) -> list[str]:
    """A message for each citation of a lesson or an equation number that does not exist."""
    out = []
    tags_of: dict[int, list[str]] = {}
    for (k, tag) in equations:
        tags_of.setdefault(k, []).append(tag)
    for (k, tag), places in sorted(cited.items(), key=lambda c: (c[0][0], tag_key(c[0][1]))):
        if (k, tag) in equations:
            continue
        where = ", ".join(f"{rel(p, root)}:{n}" for p, n in places)
        if k not in tags_of:
            why = f"there is no lesson {k} (no {rel(lessons_dir, root)}/{k:02d}_*.ipynb)"
        else:
            names = ", ".join(p.name for p in lesson_files(lessons_dir)[k])
            tags = ", ".join(sorted(tags_of[k], key=tag_key))
            why = f"{names} has no \\tag{{{tag}}} (its equations: {tags})"
        out.append(f"{where} cites L{k} ({tag}), but {why}. Correct the lesson or the number, "
                   "or remove the citation.")
    return out


def comments_and_docstrings(text: str):
    """[(first line number, text)] for every comment and docstring of a Python source."""
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT:
            out.append((tok.start[0], tok.string))
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                out.append((body[0].lineno, ast.get_source_segment(text, body[0]) or ""))
    return sorted(out)


def bare_numbers(path: Path, root: Path) -> list[str]:
    """A message for each "(N)" in a comment or docstring outside a citation."""
    out = []
    for first, chunk in comments_and_docstrings(path.read_text(encoding="utf-8")):
        for offset, line in enumerate(chunk.splitlines()):
            rest = CITATION.sub(" ", line)
            for m in BARE_NUMBER.finditer(rest):
                out.append(f"{rel(path, root)}:{first + offset}: bare equation number ({m.group(1)}) "
                           f"in {line.strip()!r}: write the lesson's citation L<k> ({m.group(1)}) if "
                           "it means a lesson equation, otherwise reword it without a number")
    return out


# ---- 3. the index in lessons/README.md -----------------------------------------------

def index_rows(readme_text: str):
    """[(line number, cells)] of the table under the "Equation index" heading (None: no such
    heading). The first table row is the header and the second the |---| line."""
    lines = readme_text.splitlines()
    start = next((i for i, line in enumerate(lines)
                  if (m := HEADING.match(line)) and m.group(1) == INDEX_HEADING), None)
    if start is None:
        return None
    rows, table = [], []
    for i in range(start + 1, len(lines)):
        line = lines[i].strip()
        if HEADING.match(lines[i]):
            break
        if line.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip("|"))]
            table.append((i + 1, cells))
        elif table:
            break  # the table ended
    for n, (lineno, cells) in enumerate(table):
        if n == 1 and all(re.fullmatch(r":?-+:?", c) for c in cells):
            continue
        if n == 0:
            continue
        rows.append((lineno, cells))
    return rows


def definitions(path: Path) -> dict[str, tuple[int, int]]:
    """Name -> (first line, last line) of each top-level function, class and constant, and
    of each method as "Class.method". The first line takes in decorators and the comment
    lines right above the definition."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()

    def span(node):
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        while first > 1 and lines[first - 2].strip().startswith("#"):
            first -= 1
        return first, node.end_lineno

    out = {}
    for node in ast.parse(text).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out[node.name] = span(node)
            if isinstance(node, ast.ClassDef):
                for sub in node.body:
                    if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        out[f"{node.name}.{sub.name}"] = span(sub)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name):
                    out[t.id] = span(node)
    return out


def first_code(cell: str) -> str | None:
    m = re.search(r"`([^`]+)`", cell)
    return m.group(1).strip() if m else None


def index_problems(readme: Path, equations: dict, root: Path) -> list[str]:
    """A message for each way the index disagrees with the lessons or the code."""
    where = rel(readme, root)
    rows = index_rows(readme.read_text(encoding="utf-8")) if readme.exists() else None
    if rows is None:
        return [f"{where} has no section headed '{INDEX_HEADING}': add it, with a table "
                "| lesson | eq. | what | file | function | and one row per lesson equation"]
    out, seen = [], {}
    for lineno, cells in rows:
        at = f"{where}:{lineno}"
        if len(cells) != 5:
            out.append(f"{at}: a row needs 5 cells (lesson, equation, what, file, function), this one "
                       f"has {len(cells)} (a '|' inside a cell? write it as \\|)")
            continue
        lesson, eq, _, file_cell, name_cell = cells
        m = re.fullmatch(rf"\(?({TAG})\)?", eq)
        if not lesson.isdigit() or not m:
            out.append(f"{at}: lesson {lesson!r} and equation {eq!r} must read like 4 and (6)")
            continue
        key = (int(lesson), m.group(1))
        label = f"L{key[0]} ({key[1]})"
        if key not in equations:
            out.append(f"{at}: a row for {label}, but lesson {key[0]} has no \\tag{{{key[1]}}}: "
                       "correct the numbers or delete the row")
            continue
        if key in seen:
            out.append(f"{at}: a second row for {label} (the first is line {seen[key]}): keep one")
            continue
        seen[key] = lineno
        file_name, name = first_code(file_cell), first_code(name_cell)
        if not file_name or not name:
            out.append(f"{at}: {label}'s row must name the file and the function in backticks")
            continue
        path = root / file_name
        if not (path.is_file() and path.suffix == ".py"):
            out.append(f"{at}: {label}'s row names {file_name}, which is not a Python file of the "
                       "repository: give its path from the repository root, e.g. scratchvae/losses.py")
            continue
        defs = definitions(path)
        if name not in defs:
            out.append(f"{at}: {label}'s row names {name}, which {file_name} does not define (a "
                       "top-level function, class or constant, or Class.method): correct the name")
            continue
        first, last = defs[name]
        if not any(k == key[0] and tag == key[1] and first <= n <= last
                   for n, k, tag in citations_in(path.read_text(encoding="utf-8"))):
            out.append(f"{at}: {label}'s row names {file_name} {name}, but {name} (lines {first}-"
                       f"{last}) does not cite {label}: add `# {label} ...` beside the code in it "
                       "that computes (or relies on) the equation, or correct the row")
    for key in sorted(set(equations) - set(seen), key=lambda e: (e[0], tag_key(e[1]))):
        path, cell, words = equations[key]
        out.append(f"{where}: no row for L{key[0]} ({key[1]}) ({rel(path, root)} cell {cell}: "
                   f"[{words}]): add | {key[0]} | ({key[1]}) | what | `file` | `function` |")
    return out


# ---- the checks on the real course and package -------------------------------------------

def _fail(problems: list[str], what: str) -> None:
    if problems:
        pytest.fail(f"{len(problems)} {what}:\n" + "\n".join(problems), pytrace=False)


def test_lessons_are_found_and_numbered():
    equations, problems = lesson_equations(LESSONS)
    found = lesson_files(LESSONS)
    assert set(found) >= {1, 2, 3, 4, 5, 6}, f"lesson notebooks found: {found}"
    empty = [k for k in found if not any(key[0] == k for key in equations)]
    assert not empty, f"lessons {empty} have no \\tag{{...}} at all: is the parser reading them?"
    _fail(problems, "problem(s) with the lessons' equation labels")


def test_every_lesson_equation_is_cited_in_the_code():
    equations, _ = lesson_equations(LESSONS)
    _fail(uncited(equations, code_citations(PACKAGE), ROOT), "lesson equation(s) cited nowhere")


def test_every_citation_names_a_lesson_equation():
    equations, _ = lesson_equations(LESSONS)
    _fail(dangling(equations, code_citations(PACKAGE), ROOT, LESSONS),
          "citation(s) of an equation the lessons lack")


def test_no_bare_equation_numbers_in_the_package():
    problems = [msg for path in package_files(PACKAGE) for msg in bare_numbers(path, ROOT)]
    _fail(problems, "bare equation number(s)")


def test_readme_equation_index():
    equations, _ = lesson_equations(LESSONS)
    _fail(index_problems(README, equations, ROOT), "problem(s) with the Equation index")


# ---- each check can fail: fake lessons, package and index ---------------------------------

def write_notebook(path: Path, *markdown: str) -> None:
    cells = [{"cell_type": "markdown", "metadata": {}, "source": [m]} for m in markdown]
    cells.append({"cell_type": "code", "metadata": {}, "source": ["# \\tag{99} in code is ignored"],
                  "outputs": [], "execution_count": None})
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))


@pytest.fixture
def course(tmp_path):
    """A fake repository: lessons 1 and 7 (an appendix), a package, and no index yet."""
    (tmp_path / "lessons").mkdir()
    (tmp_path / "pkg").mkdir()
    write_notebook(tmp_path / "lessons" / "01_intro.ipynb",
                   "$$\ny = x W + b \\tag{1}\n$$", "$$ a = b \\tag{2a} $$ and $$ c = d \\tag{2b} $$")
    write_notebook(tmp_path / "lessons" / "07_appendix.ipynb", "$$ e = m c^2 \\tag{1} $$")
    write_notebook(tmp_path / "lessons" / "notes.ipynb", "$$ \\tag{5} $$")  # no NN_: not a lesson
    return tmp_path


def test_lessons_found_by_prefix(course):
    equations, problems = lesson_equations(course / "lessons")
    assert set(equations) == {(1, "1"), (1, "2a"), (1, "2b"), (7, "1")} and not problems


def test_checker_catches_a_missing_citation(course):
    (course / "pkg" / "a.py").write_text('"""Dense, L1 (1)."""\n\ndef f():\n    return 0  # L1 (2a)-(2b)\n')
    equations, _ = lesson_equations(course / "lessons")
    missing = uncited(equations, code_citations(course / "pkg"), course)
    assert len(missing) == 1 and missing[0].startswith("L7 (1): lessons/07_appendix.ipynb")
    assert "e = m c^2" in missing[0] and "# L7 (1)" in missing[0]
    (course / "pkg" / "b.py").write_text("x = 1  # L7 (1)\n")
    assert uncited(equations, code_citations(course / "pkg"), course) == []


def test_checker_catches_a_dangling_citation(course):
    (course / "pkg" / "a.py").write_text("# L1 (1), (2a) and (2b); L7 (1)\ny = 2  # L1 (3)\nz = 3  # L2 (1)\n")
    equations, _ = lesson_equations(course / "lessons")
    cited = code_citations(course / "pkg")
    assert uncited(equations, cited, course) == []
    bad = dangling(equations, cited, course, course / "lessons")
    assert len(bad) == 2
    assert bad[0].startswith("pkg/a.py:2 cites L1 (3), but 01_intro.ipynb has no \\tag{3}")
    assert "(its equations: 1, 2a, 2b)" in bad[0]
    assert bad[1].startswith("pkg/a.py:3 cites L2 (1), but there is no lesson 2")


def test_checker_catches_a_label_used_twice(course):
    write_notebook(course / "lessons" / "07_more.ipynb", "$$ \\tag{1} $$", "$$ \\tag{A.1} $$")
    _, problems = lesson_equations(course / "lessons")
    assert len(problems) == 2 and "occurs twice" in problems[0] and "not <digits>" in problems[1]


@pytest.mark.parametrize("text, cites", [
    ("# L4 (6) E-step", [(4, "6")]),
    ("E-step, L4 (6): r_nk", [(4, "6")]),
    ("maximize L4 (4)-(5)", [(4, "4"), (4, "5")]),
    ("L5 (9a), (9b) and (10)", [(5, "9a"), (5, "9b"), (5, "10")]),
    ("L4 (4)-(7)", [(4, "4"), (4, "7")]),           # a range cites its two ends only
    ("L12  (3)", [(12, "3")]),
    ("see L4(6) or CL4 (6) or L4 6 or L4 (x)", []),  # not citations
    ("(6) alone, or eq. (6)", []),
])
def test_citation_grammar(text, cites):
    assert [(k, tag) for _, k, tag in citations_in(text)] == cites


def test_bare_numbers_are_caught(tmp_path):
    src = tmp_path / "m.py"
    src.write_text('"""Model.\n\n    L = sum_n l_n            (1)\n"""\n\n'
                   'def f(rng):\n    """The ELBO L4 (3), maximized by eqs. (4)-(5)."""\n'
                   '    return rng.RNG(0)  # E-step, L4 (6); see (2b)\n\n'
                   'MSG = "(1) connect; (2) download"  # a string, not a docstring: not checked\n')
    found = bare_numbers(src, tmp_path)
    assert [m.split(": bare")[0] for m in found] == ["m.py:3", "m.py:7", "m.py:7", "m.py:8"]
    assert "(1)" in found[0] and "(4)" in found[1] and "(5)" in found[2] and "(2b)" in found[3]


def test_index_checker_catches_each_mistake(course):
    (course / "pkg" / "a.py").write_text(
        "# L1 (1)\nSTEP = 1\n\n\nclass Dense:\n    def forward(self):\n        return 0  # L1 (2a)\n\n"
        "    def backward(self):\n        return 1\n\n\ndef g():  # L1 (2b)\n    pass\n\n\ndef h():\n    pass  # L7 (1)\n")
    equations, _ = lesson_equations(course / "lessons")
    readme = course / "lessons" / "README.md"
    assert "no section headed" in index_problems(readme, equations, course)[0]
    head = "# Course\n\n## Equation index\n\n| lesson | eq. | what | file | function |\n|---|---|---|---|---|\n"
    good = ("| 1 | (1) | dense | [`pkg/a.py`](../pkg/a.py) | `STEP` |\n"
            "| 1 | (2a) | forward | `pkg/a.py` | `Dense.forward` |\n"
            "| 1 | (2b) | what \\| with a pipe | `pkg/a.py` | `g` |\n"
            "| 7 | (1) | appendix | `pkg/a.py` | `h` |\n")
    readme.write_text(head + good + "\n## Next section\n\n| not | the | index |\n")
    assert index_problems(readme, equations, course) == []
    bad = ("| 1 | (1) | dense | `pkg/a.py` | `STEP` |\n"
           "| 1 | (1) | again | `pkg/a.py` | `STEP` |\n"            # a second row
           "| 1 | (2a) | forward | `pkg/a.py` | `Dense.backward` |\n"  # does not cite (2a)
           "| 1 | (2b) | g | `pkg/nothere.py` | `g` |\n"            # no such file
           "| 1 | (3) | extra | `pkg/a.py` | `g` |\n"                # no such equation
           "| 7 | (1) | appendix | `pkg/a.py` | `k` |\n"             # no such function
           "| 7 | (1) | short | `pkg/a.py` |\n")                     # 4 cells
    readme.write_text(head + bad)
    problems = index_problems(readme, equations, course)
    expected = ["a second row for L1 (1)", "does not cite L1 (2a)", "names pkg/nothere.py",
                "lesson 1 has no \\tag{3}", "names k, which pkg/a.py does not define",
                "needs 5 cells"]
    assert len(problems) == len(expected), problems
    for msg, want in zip(problems, expected):
        assert want in msg, (want, msg)
    readme.write_text(head + good.rsplit("| 7 |", 1)[0])  # the appendix's row left out
    assert [m.split(": ", 1)[1][:19] for m in index_problems(readme, equations, course)] == ["no row for L7 (1) ("]
