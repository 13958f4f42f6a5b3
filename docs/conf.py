"""Sphinx configuration of fastrnn's documentation site.

Build (warnings are errors), then run every code example as a doctest:

    python -m sphinx -W --keep-going -b html docs docs/_build/html
    python -m sphinx -W --keep-going -b doctest docs docs/_build/doctest

Cross-references to Python, NumPy and PyTorch (intersphinx) need their inventories: a local copy in
docs/_inventories/<name>.inv is used when present, the web when FASTRNN_DOCS_ONLINE=1; otherwise
that mapping is left out, so an offline build never waits on the network or warns about it.
"""

import os
from pathlib import Path

import fastrnn

DOCS = Path(__file__).resolve().parent

project = "fastrnn"
author = "The fastrnn developers"
copyright = "the fastrnn developers, MIT license"
release = fastrnn.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.doctest",
]
exclude_patterns = ["_build", "_inventories"]
root_doc = "index"
html_theme = "alabaster"
html_static_path: list[str] = []

# -- autodoc: signatures from the annotations, members in source order ---------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_type_aliases = {
    "ArrayLike": "numpy.typing.ArrayLike",
    "DTypeLike": "numpy.typing.DTypeLike",
    "FloatArray": "fastrnn._typing.FloatArray",
    "IntArray": "fastrnn._typing.IntArray",
    "SeedLike": "fastrnn._typing.SeedLike",
}
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = True

# -- intersphinx: only the inventories that can be read here -------------------------------------
_TARGETS = {
    "python": "https://docs.python.org/3",
    "numpy": "https://numpy.org/doc/stable",
    "torch": "https://docs.pytorch.org/docs/stable",
}


def _inventory(name, url):
    local = DOCS / "_inventories" / f"{name}.inv"
    if local.is_file():
        return url, str(local)
    if os.environ.get("FASTRNN_DOCS_ONLINE") == "1":
        return url, None
    return None


intersphinx_mapping = {
    name: target for name, url in _TARGETS.items() if (target := _inventory(name, url)) is not None
}
intersphinx_timeout = 10

# -- doctest: every example starts from the same imports and seeds -------------------------------
doctest_global_setup = """
import numpy as np
import fastrnn as fr
"""
