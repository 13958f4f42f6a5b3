"""The documentation site (docs/): it builds with warnings as errors, its code examples pass as
doctests, and the API reference has an entry for every public name."""

import importlib
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

pytest.importorskip("sphinx", reason="sphinx is in the test and docs extras")

import fastrnn  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _sphinx(builder, out):
    run = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", builder, "docs", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return run


@pytest.fixture(scope="module")
def html(tmp_path_factory):
    out = tmp_path_factory.mktemp("html")
    _sphinx("html", out)
    return out


def test_html_builds_without_warnings(html):
    for page in ("index", "getting_started", "layers", "functional", "training", "interop", "torch"):
        assert (html / f"{page}.html").is_file(), page
    for page in ("performance", "guarantees", "api"):
        assert (html / f"{page}.html").is_file(), page
    assert (html / "_images" / "bench_grid.png").is_file()  # the performance page shows the chart


def test_examples_pass_as_doctests(tmp_path):
    _sphinx("doctest", tmp_path)
    summary = (tmp_path / "output.txt").read_text()
    tests = int(summary.split("Doctest summary")[1].split()[1])
    assert tests >= 50, summary  # the pages' examples did run
    assert " 0 failures in tests" in summary, summary


def _documented(html):
    """The Python objects the built site documents, from its objects.inv."""
    raw = (html / "objects.inv").read_bytes()
    body = zlib.decompress(raw.split(b"\n", 4)[4]).decode()
    found = []
    for line in body.splitlines():
        name, role = line.split()[:2]
        if role.startswith("py:") and role != "py:module":
            found.append(name)
    return found


def _resolve(dotted):
    parts = dotted.split(".")
    for k in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:k]))
        except ImportError:
            continue
        for attr in parts[k:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def _public_names():
    """(where, name, object) for fastrnn's __all__ and that of each public submodule (for a module
    without __all__: the public names it defines)."""
    modules = [fastrnn] + [
        getattr(fastrnn, n) for n in fastrnn.__all__ if type(getattr(fastrnn, n)) is type(fastrnn)
    ]
    modules.append(importlib.import_module("fastrnn.torch"))
    out = []
    for mod in modules:
        names = getattr(mod, "__all__", None)
        if names is None:
            names = [
                n
                for n, v in vars(mod).items()
                if not n.startswith("_") and getattr(v, "__module__", None) == mod.__name__
            ]
        for n in names:
            obj = getattr(mod, n)
            if type(obj) is not type(fastrnn):
                out.append((mod.__name__, n, obj))
    return out


def test_every_public_name_has_an_entry(html):
    documented = set()
    for name in _documented(html):
        try:
            documented.add(id(_resolve(name)))
        except AttributeError:  # an instance attribute (a dataclass field): not a public name here
            pass
    public = _public_names()
    assert len(public) > 60
    missing = [f"{where}.{name}" for where, name, obj in public if id(obj) not in documented]
    assert not missing, f"not in docs/api.rst: {missing}"


def test_layer_help_documents_arguments_shapes_and_lengths():
    for layer in (fastrnn.RNN, fastrnn.LSTM, fastrnn.GRU):
        doc = layer.__doc__ or ""
        for word in (
            "input_size",
            "hidden_size",
            "num_layers",
            "batch_first",
            "lengths",
            "seed",
            "backend",
            "torch",
        ):
            assert word in doc, (layer.__name__, word)
        assert "(T, B" in doc  # the shapes
        assert layer.__call__.__doc__ and "lengths" in layer.__call__.__doc__
        assert layer.backward.__doc__ and "dh_n" in layer.backward.__doc__
