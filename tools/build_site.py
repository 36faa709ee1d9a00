"""Build the course site: every lesson executed, as static pages with navigation and search.

    python tools/build_site.py --out build/site                      # full setting
    SCRATCHVAE_FAST=1 python tools/build_site.py --out build/site    # fast setting (what CI builds)
    python tools/build_site.py --fast --out /tmp/site lessons/05_vae.ipynb   # the index and one lesson

Needs the ``site`` extra (``pip install -e ".[site]"``): Sphinx with myst-nb and
sphinx-book-theme, and MathJax 3 from the ``django-static-mathjax`` wheel. Nothing is
downloaded: the pages load only files inside the site, so the math renders offline.

What it does:

1. Lays out a Sphinx source folder in a temporary directory: ``site/`` (the configuration,
   the index template and the install page), the lessons (``lessons/*.ipynb``, or those
   named on the command line) and ``lessons/NOTATION.md``, and MathJax's
   ``tex-svg-full.js`` in ``_static/mathjax/``. The index gets its course map from the
   lesson table of ``lessons/README.md`` and lists the assignments found in
   ``course/source/`` (instructor copies with solutions: listed, not published).
2. Runs Sphinx once, which executes each lesson top to bottom in its folder (myst-nb) with
   this process's environment, so ``SCRATCHVAE_FAST=1`` gives the fast setting; a lesson
   that fails stops the build.
3. Checks what it wrote: a page per lesson with its figures on disk, and no script, style
   sheet, image or frame loaded from another host.

Prints one line per lesson with the seconds it took and exits with status 1 on any failure.
``tools/render_lessons.py`` is the old name of this command and calls it.
"""

from __future__ import annotations

import argparse
import html.parser
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SITE_SRC = ROOT / "site"
LESSONS = ROOT / "lessons"
MATHJAX_FILE = "tex-svg-full.js"   # MathJax 3, SVG output, every TeX extension: no fonts, no loader
TABLE_ROW = re.compile(r"^\|\s*(\w+)\s*\|\s*\[`?([^`\]]+?)`?\]\(([^)]+?\.ipynb)\)\s*\|\s*(.*?)\s*\|\s*$")
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//", re.I)   # http://, https://, //host


class SiteError(RuntimeError):
    """The site could not be built, or what was built is not right."""


# ---- inputs ---------------------------------------------------------------------------------

def mathjax_source() -> Path:
    """The MathJax file shipped by the ``site`` extra (django-static-mathjax: MathJax 3.2)."""
    spec = importlib.util.find_spec("mathjax")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        path = Path(loc) / "static" / "mathjax" / "es5" / MATHJAX_FILE
        if path.is_file():
            return path
    raise SiteError(f"MathJax's {MATHJAX_FILE} was not found: install the site extra, "
                    "python -m pip install -e \".[site]\" (it brings django-static-mathjax)")


def check_tools() -> None:
    missing = [m for m in ("sphinx", "myst_nb", "sphinx_book_theme") if importlib.util.find_spec(m) is None]
    if missing:
        raise SiteError(f"{', '.join(missing)} not installed: python -m pip install -e \".[site]\"")


def notebook_title(path: Path) -> str:
    """The first Markdown heading of a notebook ('' if none)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            for line in "".join(cell.get("source", [])).splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip().replace("&mdash;", "\u2014")
    return ""


def course_map(lessons: list[Path]) -> str:
    """The lesson table of lessons/README.md, limited to ``lessons`` and linked to their pages.

    A lesson missing from that table gets a row with its title."""
    described = {}
    readme = LESSONS / "README.md"
    if readme.is_file():
        for line in readme.read_text(encoding="utf-8").splitlines():
            m = TABLE_ROW.match(line)
            if m:
                described[Path(m.group(3)).name] = (m.group(1), m.group(4))
    rows = ["| | lesson | what it covers |", "|---|---|---|"]
    for nb in lessons:
        number, what = described.get(nb.name, ("", ""))
        title = notebook_title(nb) or nb.stem
        rows.append(f"| {number} | [{title}](lessons/{nb.name}) | {what or title} |")
    return "\n".join(rows)


def assignments(repo_url: str, branch: str) -> str:
    """A list of the nbgrader assignments, linked to the repository."""
    items = []
    source = ROOT / "course" / "source"
    for folder in sorted(p for p in source.glob("*") if p.is_dir()) if source.is_dir() else []:
        for nb in sorted(folder.glob("*.ipynb")):
            rel = nb.relative_to(ROOT).as_posix()
            items.append(f"- **{folder.name}**: {notebook_title(nb) or nb.stem} "
                         f"([instructor copy in the repository]({repo_url}/blob/{branch}/{rel}))")
    intro = ("Graded work comes as nbgrader assignments (`course/`), in which you write the "
             "pieces yourself. The copies in the repository hold the solutions, so they are "
             "listed here rather than published; your instructor hands out the student versions "
             "(`nbgrader generate_assignment`, or `python tools/make_student.py`, writes them).")
    return intro + "\n\n" + ("\n".join(items) if items else "- (none in this checkout)")


def stage_notebook(nb: Path, dest: Path) -> None:
    """Copy a lesson for the site: its first cell (the knobs and the Colab/Binder install
    lines) is folded away on the page behind a "show code" toggle; nothing else changes."""
    data = json.loads(nb.read_text(encoding="utf-8"))
    cells = data.get("cells", [])
    if cells and cells[0].get("cell_type") == "code":
        tags = cells[0].setdefault("metadata", {}).setdefault("tags", [])
        if "hide-input" not in tags:
            tags.append("hide-input")
    dest.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def lay_out(src: Path, lessons: list[Path], repo_url: str, branch: str, fast: bool) -> None:
    """The Sphinx source folder: site/, the lessons, the notation page and MathJax."""
    shutil.copytree(SITE_SRC, src, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    (src / "lessons").mkdir(exist_ok=True)
    for nb in lessons:
        stage_notebook(nb, src / "lessons" / nb.name)
    notation = LESSONS / "NOTATION.md"
    if not notation.is_file():
        raise SiteError(f"{notation} is missing: the site links to it from every page")
    shutil.copy2(notation, src / "lessons" / "NOTATION.md")
    (src / "_static" / "mathjax").mkdir(parents=True, exist_ok=True)
    shutil.copy2(mathjax_source(), src / "_static" / "mathjax" / MATHJAX_FILE)
    values = {"course_map": course_map(lessons), "assignments": assignments(repo_url, branch),
              "toctree": "\n".join(f"lessons/{nb.stem}" for nb in lessons),
              "setting": "fast" if fast else "full", "repo_url": repo_url}
    for page in src.glob("*.md"):
        text = page.read_text(encoding="utf-8")
        for key, value in values.items():
            text = text.replace("{{ " + key + " }}", value)
        page.write_text(text, encoding="utf-8")


# ---- the checks on what was built ---------------------------------------------------------------

class _Refs(html.parser.HTMLParser):
    """Every URL a page *loads* (not the links a reader may follow)."""

    LOADS = {"script": ("src",), "img": ("src", "srcset"), "iframe": ("src",), "source": ("src", "srcset"),
             "audio": ("src",), "video": ("src", "poster"), "embed": ("src",), "object": ("data",)}

    def __init__(self):
        super().__init__()
        self.loaded, self.images = [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "link" and a.get("href") and set((a.get("rel") or "").split()) & {"stylesheet", "preload", "icon", "modulepreload", "prefetch"}:
            self.loaded.append(a["href"])
        for name in self.LOADS.get(tag, ()):
            if a.get(name):
                self.loaded.append(a[name])
        if tag == "img" and a.get("src"):
            self.images.append(a["src"])


def check_site(out: Path, lessons: list[Path]) -> list[str]:
    """Problems with the built site ([] if none)."""
    problems = []
    for page in sorted(out.rglob("*.html")):
        refs = _Refs()
        refs.feed(page.read_text(encoding="utf-8", errors="replace"))
        for url in refs.loaded:
            if EXTERNAL.match(url.strip()):
                problems.append(f"{page.relative_to(out)} loads {url} from another host")
    for css in sorted(out.rglob("*.css")):
        for url in re.findall(r"url\(\s*['\"]?((?:https?:)?//[^)'\"]+)", css.read_text(encoding="utf-8", errors="replace")):
            problems.append(f"{css.relative_to(out)} loads {url} from another host")
    if not (out / "_static" / "mathjax" / MATHJAX_FILE).is_file():
        problems.append(f"_static/mathjax/{MATHJAX_FILE} is missing: the math would not render")
    for nb in lessons:
        page = out / "lessons" / f"{nb.stem}.html"
        if not page.is_file():
            problems.append(f"no page for {nb.name} ({page.relative_to(out)})")
            continue
        refs = _Refs()
        refs.feed(page.read_text(encoding="utf-8"))
        figures = [src for src in refs.images if "_images/" in src]
        if not figures:
            problems.append(f"{page.relative_to(out)} has no figure")
        for src in figures:
            if not (page.parent / re.split(r"[?#]", src)[0]).resolve().is_file():
                problems.append(f"{page.relative_to(out)}: figure {src} is not in the site")
    return problems


# ---- the build ----------------------------------------------------------------------------------

def build(out: Path, lessons: list[Path], repo_url: str, branch: str, fast: bool,
          timeout: int, keep_source: Path | None = None) -> float:
    """Build the site into ``out``; returns the seconds it took. Raises SiteError."""
    check_tools()
    start = time.perf_counter()
    env = dict(os.environ, SCRATCHVAE_REPO_URL=repo_url, SCRATCHVAE_REPO_BRANCH=branch,
               SCRATCHVAE_SITE_TIMEOUT=str(timeout))
    if fast:
        env["SCRATCHVAE_FAST"] = "1"
    env.setdefault("MPLBACKEND", "agg")
    with tempfile.TemporaryDirectory(prefix="scratchvae-site-") as tmp:
        src = keep_source or Path(tmp) / "src"
        if keep_source and src.exists():
            shutil.rmtree(src)
        lay_out(src, lessons, repo_url, branch, fast)
        doctrees = Path(tmp) / "doctrees"
        if out.exists():
            shutil.rmtree(out)
        cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-j", "1", "-q", "-E",
               "-d", str(doctrees), str(src), str(out)]
        result = subprocess.run(cmd, env=env, cwd=src, capture_output=True, text=True)
        if result.returncode != 0:
            raise SiteError(f"Sphinx failed (exit {result.returncode}):\n{result.stderr[-6000:]}")
        warnings = [w for w in result.stderr.splitlines()
                    if ("WARNING" in w or "ERROR" in w) and "IPKernelApp" not in w]   # not the kernel's chatter
        for w in warnings:
            print(f"  sphinx: {w}", file=sys.stderr)
        report_times(doctrees, lessons)
    problems = check_site(out, lessons)
    if problems:
        raise SiteError("the built site is not right:\n  " + "\n  ".join(problems))
    return time.perf_counter() - start


def report_times(doctrees: Path, lessons: list[Path]) -> None:
    """One line per lesson: how long myst-nb took to execute it (from its execution data)."""
    try:
        import pickle

        env = pickle.loads((doctrees / "environment.pickle").read_bytes())
        data = getattr(env, "nb_metadata", {}) or {}
    except Exception:  # the timing is a courtesy; the build itself succeeded
        data = {}
    for nb in lessons:
        took = (data.get(f"lessons/{nb.stem}", {}).get("exec_data") or {}).get("runtime")
        print(f"executed lessons/{nb.name}" + (f" in {took:.0f} s" if took is not None else ""))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="lessons to include (default: every lessons/*.ipynb)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "site",
                        help="output folder, replaced if it exists (default build/site)")
    parser.add_argument("--fast", action="store_true",
                        help="the fast setting, as SCRATCHVAE_FAST=1 (set either one)")
    parser.add_argument("--repo-url", default=os.environ.get("SCRATCHVAE_REPO_URL"),
                        help="repository behind the Colab, Binder and repository links "
                             "(default: SCRATCHVAE_REPO_URL, else site/conf.py's DEFAULT_REPO_URL)")
    parser.add_argument("--branch", default=os.environ.get("SCRATCHVAE_REPO_BRANCH", "main"),
                        help="the repository's branch for those links (default main)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell (default 1800)")
    parser.add_argument("--keep-source", type=Path, default=None,
                        help="lay the Sphinx source folder out here and keep it (for debugging)")
    args = parser.parse_args(argv)
    fast = args.fast or os.environ.get("SCRATCHVAE_FAST", "0") == "1"
    lessons = [p.resolve() for p in args.notebooks] or sorted(LESSONS.glob("*.ipynb"))
    for nb in lessons:
        if not nb.is_file() or nb.suffix != ".ipynb":
            print(f"build_site: {nb} is not a notebook", file=sys.stderr)
            return 1
    repo_url = (args.repo_url or default_repo_url()).rstrip("/")
    try:
        seconds = build(args.out.resolve(), lessons, repo_url, args.branch, fast, args.timeout,
                        args.keep_source.resolve() if args.keep_source else None)
    except SiteError as exc:
        print(f"build_site: {exc}", file=sys.stderr)
        return 1
    print(f"site with {len(lessons)} lesson(s), {'fast' if fast else 'full'} setting, in {seconds:.0f} s: "
          f"{args.out / 'index.html'}")
    return 0


def default_repo_url() -> str:
    """DEFAULT_REPO_URL from site/conf.py, read without running it."""
    m = re.search(r'^DEFAULT_REPO_URL\s*=\s*"([^"]+)"', (SITE_SRC / "conf.py").read_text(encoding="utf-8"), re.M)
    if not m:
        raise SystemExit("build_site: site/conf.py defines no DEFAULT_REPO_URL")
    return m.group(1)


if __name__ == "__main__":
    sys.exit(main())
