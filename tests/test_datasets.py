"""fastrnn.datasets: the pydoc corpus, the Mackey-Glass series and CSV columns."""

import numpy as np
import pytest

from fastrnn import datasets


def test_python_docs_text_is_the_pydoc_topics():
    from pydoc_data.topics import topics

    text = datasets.python_docs_text()
    assert len(text) > 100_000 and topics["assert"].strip() in text


def test_mackey_glass_is_the_chaotic_series():
    x = datasets.mackey_glass(2000)
    assert x.shape == (2000,) and x.dtype == np.float64
    assert 0.3 < x.min() < 0.5 and 1.2 < x.max() < 1.4  # the attractor's usual range at tau=17
    np.testing.assert_array_equal(x, datasets.mackey_glass(2000))  # deterministic
    np.testing.assert_array_equal(datasets.mackey_glass(500), x[:500])
    # chaotic, not periodic: no lag in 1..300 repeats the series
    d = [np.max(np.abs(x[k:] - x[:-k])) for k in range(1, 300)]
    assert min(d) > 0.05
    # tau below the Hopf bifurcation (~4.5) settles to the fixed point x = 1
    assert abs(datasets.mackey_glass(200, tau=2.0)[-1] - 1.0) < 1e-3


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n": 0}, "n must be an int >= 1"),
        ({"n": 2.5}, "n must be an int >= 1"),
        ({"n": 5, "sample_every": 0}, "sample_every must be an int >= 1"),
        ({"n": 5, "discard": -1}, "discard must be an int >= 0"),
        ({"n": 5, "tau": 0}, "tau must be a finite number > 0"),
        ({"n": 5, "dt": float("nan")}, "dt must be a finite number > 0"),
    ],
)
def test_mackey_glass_rejects(kwargs, match):
    with pytest.raises(ValueError, match=match):
        datasets.mackey_glass(**kwargs)


def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_read_csv_column_with_header(tmp_path):
    path = write(tmp_path, "date,open,close\n2024-01-01,1.5,2\n\n2024-01-02,3,4e0\n")
    values, name = datasets.read_csv_column(path)
    np.testing.assert_array_equal(values, [2.0, 4.0])
    assert name == "close"
    assert datasets.read_csv_column(path, "open")[0].tolist() == [1.5, 3.0]
    assert datasets.read_csv_column(path, 1)[1] == "open"
    assert datasets.read_csv_column(path, "2")[1] == "close"


def test_read_csv_column_without_header(tmp_path):
    path = write(tmp_path, "1,10\n2,20\n3,30\n")
    values, name = datasets.read_csv_column(path, 0)
    assert values.tolist() == [1.0, 2.0, 3.0] and name == "column 0"


@pytest.mark.parametrize(
    "text, column, match",
    [
        ("a,b\n1,2\n3,x\n", None, r"line 3: column 1 holds 'x', not a finite number"),
        ("a,b\n1,2\n3\n", None, r"line 3: column 1 holds nothing"),
        ("a,b\n1,nan\n", "b", r"line 2: column 1 holds 'nan'"),
        ("a,b\n1,2\n", "c", r"no column 'c'; columns: a, b"),
        ("1,2\n", "c", r"no column 'c' \(the file has no header\)"),
        ("a,b\n1,2\n", 5, r"column index 5 out of range: the file has 2 columns"),
        ("\n\n", None, "no data rows"),
        ("a,b\n", None, "a header but no data rows"),
    ],
)
def test_read_csv_column_rejects(tmp_path, text, column, match):
    with pytest.raises(ValueError, match=match):
        datasets.read_csv_column(write(tmp_path, text), column)
