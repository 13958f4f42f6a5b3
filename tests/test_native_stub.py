"""python/fastrnn/_native.pyi against the built extension: the same public names, the same kinds
(class or function), and for every function the argument names pybind11 gives in its signature."""

import ast
import pathlib
import re

import pytest

import fastrnn

pytestmark = pytest.mark.native

STUB = pathlib.Path(fastrnn.__file__).resolve().parent / "_native.pyi"


def _stub():
    """{name: ("class", None) or ("function", [argument names])} from the stub file."""
    out = {}
    for node in ast.parse(STUB.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ClassDef):
            out[node.name] = ("class", None)
        elif isinstance(node, ast.FunctionDef):
            out[node.name] = ("function", [a.arg for a in node.args.posonlyargs + node.args.args])
    return {k: v for k, v in out.items() if not k.startswith("_")}


def signature_arguments(doc, name):
    """The argument names in the first line of a pybind11 docstring, ``name(a: T, b: U) -> R``."""
    first = doc.strip().splitlines()[0]
    match = re.fullmatch(rf"{re.escape(name)}\((.*)\) -> .*", first)
    assert match, f"{name}: no pybind11 signature in {first!r}"
    depth, names, current = 0, [], ""
    for ch in match.group(1) + ",":  # split at top-level commas (types may hold [a, b])
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            if current.strip():
                names.append(current.split(":")[0].strip())
            current = ""
        else:
            current += ch
    return names


def _native():
    from fastrnn import _native

    return {name: obj for name, obj in vars(_native).items() if not name.startswith("_")}


def test_signature_parser_reads_pybind11_signatures():
    assert signature_arguments("f(a: object, b: typing.SupportsInt | typing.SupportsIndex) -> None", "f") == [
        "a",
        "b",
    ]
    assert signature_arguments("g() -> list[str]\n\nText.", "g") == []
    assert signature_arguments("h(x: dict[str, int], y: bool) -> tuple", "h") == ["x", "y"]


def test_stub_names_match_the_extension():
    assert sorted(_stub()) == sorted(_native())


@pytest.mark.parametrize("name", sorted(_stub()))
def test_stub_entry_matches_the_extension(name):
    kind, args = _stub()[name]
    obj = _native()[name]
    if kind == "class":
        assert isinstance(obj, type), f"{name} is a class in the stub, not in the extension"
        return
    assert callable(obj) and not isinstance(obj, type), f"{name} is a function in the stub only"
    assert args == signature_arguments(obj.__doc__, name), f"{name}: argument names differ"
