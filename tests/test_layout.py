"""The package's import graph, read from its source: no module imports the package root (or a
package above it), and the module-level imports between the package's modules form no cycle.
Imports run one way, from the public layers down to _checks, _cells and the backends."""

import ast
import pathlib

import pytest

import fastrnn

PACKAGE = pathlib.Path(fastrnn.__file__).resolve().parent


def _module_name(path):
    parts = ("fastrnn",) + path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules():
    """{dotted name: (path, is a package)} for every .py file of the package."""
    return {_module_name(p): (p, p.name == "__init__.py") for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(tree, name, is_package, modules):
    """(line, imported module, at module level) for every import in ``tree``; ``from X import y``
    counts as importing X.y when that is a module, else as importing X."""
    here = name if is_package else name.rpartition(".")[0]  # what "." means in this file
    top_level = {id(node) for node in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name, id(node) in top_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.append((node.lineno, sub if sub in modules else target, id(node) in top_level))
    return out


def upward_imports(source, name, is_package=False, modules=None):
    """The imports in ``source`` (the text of module ``name``) of the package root or of a package
    that contains ``name``: ``[(line, module)]``."""
    modules = _modules() if modules is None else modules
    parts = name.split(".")
    above = {".".join(parts[:k]) for k in range(1, len(parts))}  # a package's own name is not above it
    return [
        (line, target)
        for line, target, _ in _imports(ast.parse(source), name, is_package, modules)
        if target in above
    ]


def test_the_checker_sees_an_import_of_the_package_root():
    modules = _modules()
    assert upward_imports("from . import __version__\n", "fastrnn._backend", modules=modules) == [
        (1, "fastrnn")
    ]
    assert upward_imports("def f():\n    import fastrnn\n", "fastrnn.layers", modules=modules) == [
        (2, "fastrnn")
    ]
    assert upward_imports("from fastrnn import info\n", "fastrnn.x", modules=modules) == [(1, "fastrnn")]
    # A sibling module is not the root, even when imported through it.
    assert (
        upward_imports(
            "from . import _backend, functional as F\nfrom fastrnn import _checks\n",
            "fastrnn.layers",
            modules=modules,
        )
        == []
    )


@pytest.mark.parametrize("name", sorted(_modules()))
def test_no_module_imports_the_package_root_or_above(name):
    modules = _modules()
    path, is_package = modules[name]
    found = upward_imports(path.read_text(encoding="utf-8"), name, is_package, modules)
    assert not found, (
        f"{path.name} imports {', '.join(f'{t} (line {line})' for line, t in found)}: "
        "import the module that defines the name instead"
    )


def test_module_level_imports_form_no_cycle():
    modules = _modules()
    graph = {}
    for name, (path, is_package) in modules.items():
        if is_package:
            continue  # the root re-exports everything: it sits above the graph
        graph[name] = {
            t
            for _, t, top in _imports(ast.parse(path.read_text(encoding="utf-8")), name, is_package, modules)
            if top and t in modules and not modules[t][1] and t != name
        }
    state = {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycle = trail[trail.index(nxt) :] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert "fastrnn._checks" in graph and "fastrnn.layers" in graph  # the walk saw the package
