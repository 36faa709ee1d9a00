"""Sphinx configuration of the course site (built by tools/build_site.py, which copies this
folder and the lessons into a staging folder and runs Sphinx on it; see that script).

Everything the pages load ships with the site: MathJax comes from the ``site`` extra
(the ``django-static-mathjax`` wheel, MathJax 3 with its SVG output and every TeX
extension in one file, so it needs no font files and loads nothing else), the theme's
assets come with sphinx-book-theme, and ipywidgets' loader from a CDN is switched off.
The repository URL behind the Colab, Binder and repository links is configurable:
``build_site.py --repo-url`` or the environment variable SCRATCHVAE_REPO_URL.
"""

import os

# The repository that "Open in Colab" / "Binder" links and the lessons' install cell point to.
DEFAULT_REPO_URL = "https://github.com/scratchvae/scratchvae"
REPO_URL = os.environ.get("SCRATCHVAE_REPO_URL", DEFAULT_REPO_URL).rstrip("/")
BRANCH = os.environ.get("SCRATCHVAE_REPO_BRANCH", "main")

project = "scratchvae"
author = "the scratchvae authors"
copyright = "the scratchvae authors"
html_title = "scratchvae: the VAE from scratch"

extensions = ["myst_nb", "sphinx.ext.mathjax"]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "conf.py"]
suppress_warnings = ["myst.header", "mystnb.unknown_mime_type"]

# ---- MyST and the notebooks ------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "html_image"]
myst_heading_anchors = 3
nb_execution_mode = os.environ.get("SCRATCHVAE_SITE_EXECUTE", "force")   # run every lesson
nb_execution_timeout = int(os.environ.get("SCRATCHVAE_SITE_TIMEOUT", "1800"))   # seconds per cell
nb_execution_raise_on_error = True            # a lesson that fails stops the build
nb_execution_show_tb = True
nb_execution_in_temp = False                  # run in the lesson's own folder, as Jupyter does
nb_merge_streams = True
nb_ipywidgets_js = {}                         # no require.js / widget loader from a CDN

# ---- math: MathJax 3 from the site's own _static folder ---------------------------------
mathjax_path = "mathjax/tex-svg-full.js"      # copied there by tools/build_site.py
mathjax3_config = {
    "loader": {"load": []},                   # everything is in the one file: load nothing more
    "options": {"enableMenu": False},         # the menu can fetch speech rules on demand
    "svg": {"fontCache": "global"},
}

# ---- the theme ----------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_static_path = ["_static"]
html_last_updated_fmt = None
html_show_sourcelink = False
html_copy_source = False
html_theme_options = {
    "repository_url": REPO_URL,
    "repository_branch": BRANCH,
    "path_to_docs": "",
    "use_repository_button": True,
    "use_download_button": True,
    "launch_buttons": {
        "colab_url": "https://colab.research.google.com",
        "binderhub_url": "https://mybinder.org",
        "notebook_interface": "jupyterlab",
    },
    "show_toc_level": 2,
    "home_page_in_toc": True,
}
