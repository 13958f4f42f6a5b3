"""The sdist holds exactly the tracked files (pyproject's sdist.include/exclude), whatever else lies in
the tree: the tracked files are copied next to typical junk (a demo model, build output, a compiled
module, caches), the sdist is built from that copy with the real build backend, and its members must
be the tracked files plus PKG-INFO, nothing more and nothing less."""

import pathlib
import shutil
import subprocess
import sys
import tarfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Files that land in a working tree without being sources: none of them may ship.
JUNK = [
    "demo_model.npz", "examples/demo_model.npz", "notes.txt",
    "build/ship/CMakeCache.txt", "dist/fastrnn-0.0.0.tar.gz", "wheelhouse/fastrnn-0.0.0-py3-none-any.whl",
    "python/fastrnn/_native.cpython-311-x86_64-linux-gnu.so", "python/fastrnn/__pycache__/layers.cpython-311.pyc",
    "python/fastrnn/model.npz", "tests/__pycache__/conftest.cpython-311-pytest-9.0.pyc", "tests/model.npz",
    "csrc/recurrence.o", "docs/_build/html/index.html", "docs/__pycache__/conf.cpython-311.pyc",
    "fastrnn.egg-info/PKG-INFO", ".pytest_cache/v/cache/lastfailed", ".hypothesis/examples/x",
    ".benchmarks/Linux-CPython-3.11-64bit/0001_run.json", ".venv/bin/python",
]


def _tracked_files():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout (e.g. an unpacked sdist): nothing to compare the sdist with")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    # A tracked file deleted in the working tree (not yet committed) is not a source any more.
    return sorted(p for p in out.decode().split("\0") if p and (ROOT / p).is_file())


def test_sdist_is_exactly_the_tracked_files(tmp_path):
    pytest.importorskip("scikit_build_core")
    tracked = _tracked_files()
    tree = tmp_path / "tree"
    for rel in tracked:
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, tree / rel)
    for rel in JUNK:
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(b"junk")
    out = tmp_path / "dist"
    out.mkdir()
    build = "import sys; from scikit_build_core.build import build_sdist; print(build_sdist(sys.argv[1]))"
    result = subprocess.run([sys.executable, "-c", build, str(out)], cwd=tree, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    sdist = out / result.stdout.strip().splitlines()[-1]
    with tarfile.open(sdist) as tar:
        names = [m.name for m in tar.getmembers() if m.isfile()]
    top = {name.split("/", 1)[0] for name in names}
    assert len(top) == 1, top  # one fastrnn-<version>/ directory
    shipped = sorted(name.split("/", 1)[1] for name in names)
    assert "PKG-INFO" in shipped and "LICENSE" in tracked
    extra = sorted(set(shipped) - set(tracked) - {"PKG-INFO"})
    missing = sorted(set(tracked) - set(shipped))
    assert not extra and not missing, f"fix sdist.include in pyproject.toml: {extra=} {missing=}"
    assert len(shipped) == len(set(shipped)) == len(tracked) + 1  # no member stored twice
