"""Static types: mypy --strict passes on the package, and a user's script type-checks with real
types (no expression of type Any) while mistakes in it are caught."""

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("mypy", reason="mypy is in the test extra")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "typed" / "user_script.py"


def _mypy(*args, cwd=ROOT, config=None):
    """Runs mypy in a subprocess (its own cache in the repository's .mypy_cache, git-ignored)."""
    command = [sys.executable, "-m", "mypy", "--no-error-summary", "--cache-dir", str(ROOT / ".mypy_cache")]
    if config is not None:
        command += ["--config-file", str(config)]
    return subprocess.run(command + list(args), cwd=cwd, capture_output=True, text=True, timeout=300)


def _user_config(tmp_path):
    """--strict, fastrnn found in the source tree as a user's mypy finds the installed package (its
    own errors are the package test's business)."""
    config = tmp_path / "mypy.ini"
    config.write_text(
        textwrap.dedent(f"""\
            [mypy]
            strict = True
            mypy_path = {ROOT / "python"}
            [mypy-fastrnn.*]
            follow_imports = silent
            """)
    )
    return config


def test_package_is_typed():
    assert (ROOT / "python" / "fastrnn" / "py.typed").is_file()
    assert (ROOT / "python" / "fastrnn" / "_native.pyi").is_file()


def test_package_passes_mypy_strict():
    run = _mypy()  # [tool.mypy] in pyproject.toml: strict, files = python/fastrnn
    assert run.returncode == 0, run.stdout + run.stderr


def test_user_script_has_real_types(tmp_path):
    report = tmp_path / "report"
    run = _mypy("--any-exprs-report", str(report), str(SCRIPT), config=_user_config(tmp_path))
    assert run.returncode == 0, run.stdout + run.stderr
    rows = {}
    for line in (report / "any-exprs.txt").read_text().splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[1].isdigit():
            rows[fields[0]] = (int(fields[1]), int(fields[2]))
    anys, exprs = rows["user_script"]
    assert exprs > 200  # the whole script was checked
    assert anys == 0, f"{anys} expressions of type Any in {SCRIPT.name}"


MISTAKES = """\
import numpy as np
import fastrnn as fr

lstm = fr.LSTM(10, "20")
y, h = fr.GRU(10, 20)(np.zeros((3, 2, 10), np.float32))
h.append(0)
loss, grad = fr.losses.mse(y, y)
loss.shape
fr.Hopfield(8).recall(np.ones(8), mode=1)
fr.functional.forward("gru", y, None, None, y, y, None, None, reverse="no")
"""


def test_mistakes_are_caught(tmp_path):
    script = tmp_path / "mistakes.py"
    script.write_text(MISTAKES)
    run = _mypy(str(script), config=_user_config(tmp_path))
    lines = sorted({int(m) for m in re.findall(r"mistakes\.py:(\d+): error", run.stdout)})
    assert lines == [4, 6, 8, 9, 10], run.stdout


def test_user_script_runs(tmp_path):
    run = subprocess.run(
        [sys.executable, str(SCRIPT)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
