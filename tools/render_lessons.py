"""The old name of tools/build_site.py: render the lessons, executed, as the course site.

    python tools/render_lessons.py                # = python tools/build_site.py --out build/html
    python tools/render_lessons.py --fast         # the fast setting (SCRATCHVAE_FAST=1)
    python tools/render_lessons.py lessons/05_vae.ipynb --out /tmp/html   # the index and one lesson

There is one way to render the lessons: the site (an index, a page per lesson with its
figures, navigation, search, and math typeset offline). This wrapper keeps the old
command and its default folder, build/html, working; every option is build_site's.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import build_site  # noqa: E402  (the tools folder is not a package)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a == "--out" or a.startswith("--out=") for a in argv):
        argv += ["--out", str(build_site.ROOT / "build" / "html")]
    return build_site.main(argv)


if __name__ == "__main__":
    sys.exit(main())
