"""fastrnn.Hopfield: the native recall against the numpy reference (exactly), the network's behaviour
(fixed points, energy descent, capacity), weights and state_dict, and bad input."""

import importlib.util
import os
import threading

import numpy as np
import pytest

import fastrnn as fr
from fastrnn import hopfield as hf

from helpers import NATIVE, backend_params

native = pytest.mark.native
HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, os.pardir, "examples", "hopfield.py")


def random_patterns(P, N, seed, dtype=np.int8):
    rng = np.random.default_rng(seed)
    return rng.choice(np.array([-1, 1], dtype=dtype), size=(P, N))


def corrupt(states, fraction, seed):
    """Copies of ``states`` with exactly round(fraction * N) units flipped in each row."""
    rng = np.random.default_rng(seed)
    out = states.copy()
    n = out.shape[-1]
    for row in out.reshape(-1, n):
        row[rng.choice(n, size=int(round(fraction * n)), replace=False)] *= -1
    return out


def both(N, patterns=None):
    """The same network with each backend."""
    return (fr.Hopfield(N, patterns, backend="numpy"), fr.Hopfield(N, patterns, backend="native"))


def assert_same(a, b):
    assert isinstance(a, hf.RecallResult) and isinstance(b, hf.RecallResult)
    assert a.states.dtype == b.states.dtype and a.states.shape == b.states.shape
    np.testing.assert_array_equal(a.states, b.states)
    np.testing.assert_array_equal(a.converged, b.converged)
    np.testing.assert_array_equal(a.iterations, b.iterations)


# -------------------------------------------------------------------------------------------------
# Native == numpy, bit for bit


@native
@pytest.mark.parametrize("mode", hf.MODES)
@pytest.mark.parametrize(
    "N, P, B, noise",
    [
        (1, 1, 3, 0.0),
        (2, 1, 4, 0.5),
        (7, 2, 5, 0.3),
        (64, 6, 20, 0.2),
        (100, 25, 30, 0.15),
        (150, 60, 12, 0.3),
    ],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_backends_agree_exactly(mode, N, P, B, noise, seed):
    patterns = random_patterns(P, N, seed)
    states = corrupt(patterns[np.arange(B) % P], noise, seed + 100)
    numpy_net, native_net = both(N, patterns)
    a = numpy_net.recall(states, mode=mode, max_iters=30, seed=seed)
    b = native_net.recall(states, mode=mode, max_iters=30, seed=seed)
    assert_same(a, b)
    assert a.states.dtype == np.int8 and a.converged.dtype == bool and a.iterations.dtype == np.int64


@native
@pytest.mark.parametrize("mode", hf.MODES)
def test_backends_agree_on_random_states_with_cycles(mode):
    # Random starts at a high load: spurious states, and 2-cycles for sync.
    N, P, B = 80, 40, 40
    patterns = random_patterns(P, N, 7)
    states = random_patterns(B, N, 8)
    numpy_net, native_net = both(N, patterns)
    for max_iters in (1, 2, 5, 17):
        assert_same(
            numpy_net.recall(states, mode=mode, max_iters=max_iters, seed=3),
            native_net.recall(states, mode=mode, max_iters=max_iters, seed=3),
        )
    result = native_net.recall(states, mode=mode, max_iters=50, seed=3)
    if mode == "async":
        assert result.converged.all()  # energy descent: async always converges
    else:
        assert not result.converged.all()  # this set of starts has 2-cycles
        assert (result.iterations[~result.converged] == 50).all()


@native
@pytest.mark.parametrize("magnitude", [2**10, 2**20, 2**28])
def test_large_weights_agree(magnitude):
    # The native kernel's three ways to the fields, by max|W| * (N - 1): below 2**24 an exact float
    # product (AVX2/AVX-512 builds); up to 2**30 int32 integer sums; beyond, int64 fields.
    N = 40
    rng = np.random.default_rng(0)
    w = rng.integers(-magnitude, magnitude, size=(N, N)).astype(np.int64)
    w = np.triu(w, 1)
    w = (w + w.T).astype(np.int32)
    state = {"weight": w, "num_patterns": np.array(0)}
    numpy_net, native_net = both(N)
    numpy_net.load_state_dict(state)
    native_net.load_state_dict(state)
    states = random_patterns(10, N, 1)
    for mode in hf.MODES:
        assert_same(numpy_net.recall(states, mode=mode, seed=5), native_net.recall(states, mode=mode, seed=5))
    np.testing.assert_array_equal(numpy_net.energy(states), native_net.energy(states))


@native
def test_every_cpu_path_agrees():
    from fastrnn import _native

    N, P = 96, 20
    patterns = random_patterns(P, N, 3)
    states = corrupt(patterns, 0.25, 4)
    net = fr.Hopfield(N, patterns, backend="native")
    expected = fr.Hopfield(N, patterns, backend="numpy").recall(states, seed=1)
    before = _native.active_path()
    ran = []
    try:
        for path in _native.compiled_paths():
            try:
                _native.set_cpu_path(path)
            except ValueError:  # compiled in, but this CPU cannot run it
                continue
            assert _native.active_path() == path
            assert_same(net.recall(states, seed=1), expected)
            assert_same(
                net.recall(states, mode="sync", seed=1),
                fr.Hopfield(N, patterns, backend="numpy").recall(states, mode="sync"),
            )
            ran.append(path)
    finally:
        _native.set_cpu_path(before)
    assert "portable" in ran


@pytest.mark.parametrize("backend", backend_params())
def test_result_independent_of_batch_and_chunks(backend):
    N, P = 60, 6
    patterns = random_patterns(P, N, 11)
    states = corrupt(np.tile(patterns, (2, 1)), 0.2, 12)
    net = fr.Hopfield(N, patterns, backend=backend)
    full = net.recall(states, seed=9)
    assert full.iterations.max() <= 5
    for b in (0, 5, len(states) - 1):
        one = net.recall(states[b], seed=9)  # the same orders whatever the rest of the batch
        np.testing.assert_array_equal(one.states, full.states[b])
        assert one.converged == full.converged[b] and one.iterations == full.iterations[b]
    # max_iters=5 draws sweeps in chunks 4 + 1, max_iters=100 in 4 + 8 + ...: same orders.
    assert_same(net.recall(states, max_iters=5, seed=9), full)
    # Seeding by Generator is the same as by int.
    assert_same(net.recall(states, seed=np.random.default_rng(9)), full)


# -------------------------------------------------------------------------------------------------
# The network's behaviour (each backend)


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("mode", hf.MODES)
def test_stored_patterns_are_fixed_points(backend, mode):
    N, P = 200, 5
    patterns = random_patterns(P, N, 21)
    net = fr.Hopfield(N, patterns, backend=backend)
    result = net.recall(patterns, mode=mode, seed=0)
    np.testing.assert_array_equal(result.states, patterns)
    assert result.converged.all() and (result.iterations == 1).all()
    # so are their negations (the Hebbian rule is symmetric under s -> -s)
    np.testing.assert_array_equal(net.recall(-patterns, mode=mode, seed=0).states, -patterns)


@pytest.mark.parametrize("backend", backend_params())
def test_energy_never_increases_async(backend):
    N, P = 50, 12
    patterns = random_patterns(P, N, 31)
    net = fr.Hopfield(N, patterns, backend=backend)
    s = random_patterns(8, N, 32)
    energy = net.energy(s)
    for sweep in range(30):  # one sweep at a time, a fresh order each
        result = net.recall(s, max_iters=1, seed=sweep)
        new_energy = net.energy(result.states)
        changed = np.any(result.states != s, axis=1)
        assert (new_energy <= energy).all()
        assert (new_energy[changed] < energy[changed]).all()  # each flip lowers E by 2|h_i| > 0
        assert (result.converged == ~changed).all()
        s, energy = result.states, new_energy
    assert net.recall(s, seed=0).converged.all()


def test_energy_per_flip_matches_the_local_field():
    # Single-unit updates done by hand: each flip lowers E by exactly 2 |h_i| (W's integer units).
    N = 30
    net = fr.Hopfield(N, random_patterns(6, N, 41))
    w = net.weights.astype(np.int64)
    s = random_patterns(1, N, 42)[0].astype(np.int64)
    rng = np.random.default_rng(0)
    for i in rng.integers(0, N, size=300):
        h = int(w[i] @ s)
        before = net.energy(s)
        if h != 0 and np.sign(h) != s[i]:
            s[i] = -s[i]
            assert net.energy(s) == before - 2 * abs(h)


def test_energy_values():
    N = 20
    patterns = random_patterns(3, N, 51)
    net = fr.Hopfield(N, patterns)
    states = random_patterns(4, N, 52)
    w = net.weights.astype(np.int64)
    expected = [-(s.astype(np.int64) @ w @ s.astype(np.int64)) // 2 for s in states]
    e = net.energy(states)
    assert e.dtype == np.int64 and e.shape == (4,)
    np.testing.assert_array_equal(e, expected)
    assert isinstance(net.energy(states[0]), int) and net.energy(states[0]) == expected[0]
    assert net.energy(states.astype(np.float32)).tolist() == list(expected)
    # float weights W / N give the same energy / N
    np.testing.assert_allclose(-0.5 * np.einsum("bi,ij,bj->b", states, w / N, states), e / N)


def capacity_success(backend, N, alpha, mode, seed, copies=40, noise=0.1):
    P = int(round(alpha * N))
    patterns = random_patterns(P, N, seed)
    targets = patterns[np.arange(copies) % P]
    states = corrupt(targets, noise, seed + 1)
    result = fr.Hopfield(N, patterns, backend=backend).recall(states, mode=mode, seed=seed)
    return float(np.mean(np.all(result.states == targets, axis=1)))


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("mode", hf.MODES)
def test_capacity(backend, mode):
    # N = 200, 10% of the units flipped. Measured over seeds 0..9: at alpha = 0.05 every copy is
    # recalled exactly; at alpha = 0.25 at most 2% are. The margins below are wide.
    low = [capacity_success(backend, 200, 0.05, mode, seed) for seed in (0, 1)]
    high = [capacity_success(backend, 200, 0.25, mode, seed) for seed in (0, 1)]
    assert min(low) >= 0.95, low
    assert max(high) <= 0.2, high


@pytest.mark.parametrize("backend", backend_params())
def test_sync_two_cycle(backend):
    # W = [[0, -1], [-1, 0]] from the pattern (1, -1): sync from (1, 1) flips both units forever.
    net = fr.Hopfield(2, [1, -1], backend=backend)
    result = net.recall([1, 1], mode="sync", max_iters=10)
    assert result.converged is False and result.iterations == 10
    assert result.states.tolist() == [1, 1]  # an even number of sweeps: back at the start
    assert net.recall([1, 1], mode="sync", max_iters=3).states.tolist() == [-1, -1]
    # async flips one unit and stops at a stored state (the pattern or its negation)
    result = net.recall([1, 1], mode="async", seed=0)
    assert result.converged is True and result.states.tolist() in ([1, -1], [-1, 1])


@pytest.mark.parametrize("backend", backend_params())
def test_tie_keeps_the_state(backend):
    # Patterns (1, 1, 1) and (1, -1, -1): W_01 = W_02 = 0, W_12 = 2. Unit 0's field is always 0, so it
    # keeps whatever value it starts with.
    net = fr.Hopfield(3, [[1, 1, 1], [1, -1, -1]], backend=backend)
    assert net.weights.tolist() == [[0, 0, 0], [0, 0, 2], [0, 2, 0]]
    starts = np.array([[a, b, c] for a in (1, -1) for b in (1, -1) for c in (1, -1)])
    for mode in hf.MODES:
        for max_iters in (1, 2, 3):
            result = net.recall(starts, mode=mode, max_iters=max_iters, seed=0)
            np.testing.assert_array_equal(result.states[:, 0], starts[:, 0])
    # (-1, 1, 1) is a fixed point although unit 0 disagrees with the stored patterns
    result = net.recall([-1, 1, 1], mode="sync")
    assert result.states.tolist() == [-1, 1, 1] and result.converged and result.iterations == 1
    # all fields 0: nothing moves, converged at once
    zero = fr.Hopfield(3, backend=backend)
    for mode in hf.MODES:
        result = zero.recall([[1, -1, 1], [-1, -1, -1]], mode=mode)
        assert result.states.tolist() == [[1, -1, 1], [-1, -1, -1]]
        assert result.converged.all() and (result.iterations == 1).all()


@pytest.mark.parametrize("backend", backend_params())
def test_shapes_dtypes_and_inputs_untouched(backend):
    N = 16
    patterns = random_patterns(3, N, 61)
    net = fr.Hopfield(N, patterns, backend=backend)
    for dtype in (np.int8, np.int16, np.int32, np.int64, np.float32, np.float64, ">f8", ">i4"):
        x = corrupt(patterns, 0.125, 62).astype(dtype)
        keep = x.copy()
        result = net.recall(x, seed=0)
        np.testing.assert_array_equal(x, keep)
        assert result.states.dtype == np.dtype(dtype).newbyteorder("=")
        assert result.states.shape == x.shape
        assert result.converged.shape == (3,) and result.iterations.shape == (3,)
    one = net.recall(patterns[0].tolist(), seed=0)  # a list of Python ints, (N,)
    assert one.states.shape == (N,) and one.states.dtype == np.int64
    assert one.converged is True and one.iterations == 1
    states, converged, iterations = net.recall(patterns[:, ::-1].T[::-1].T, mode="sync")  # a view
    assert states.shape == (3, N)
    fortran = np.asfortranarray(patterns.astype(np.float64))
    np.testing.assert_array_equal(net.recall(fortran, seed=1).states, patterns)
    empty = net.recall(np.zeros((0, N)), seed=0)
    assert empty.states.shape == (0, N) and empty.converged.shape == (0,)
    assert net.energy(np.zeros((0, N))).shape == (0,)


@native
def test_threads_give_serial_results(split_everything):
    # Python threads calling at once (the GIL is released), and the product of the first fields split
    # over a thread team of 2 whatever its size: the results are exactly the serial ones.
    N, P = 120, 10
    patterns = random_patterns(P, N, 71)
    states = corrupt(np.tile(patterns, (3, 1)), 0.2, 72)
    net = fr.Hopfield(N, patterns, backend="native")
    expected = fr.Hopfield(N, patterns, backend="numpy").recall(states, seed=4)
    fr.set_num_threads(2)
    assert_same(net.recall(states, seed=4), expected)
    results = [None] * 4

    def work(k):
        results[k] = net.recall(states, seed=4)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        assert_same(r, expected)


def test_default_backend_follows_use_backend():
    N = 12
    patterns = random_patterns(2, N, 81)
    net = fr.Hopfield(N, patterns)
    with fr.use_backend("numpy"):
        a = net.recall(corrupt(patterns, 0.25, 82), seed=0)
    b = net.recall(corrupt(patterns, 0.25, 82), seed=0)
    assert_same(a, b)
    assert repr(net) == "Hopfield(num_units=12, num_patterns=2)"
    assert repr(fr.Hopfield(3, backend="numpy")) == "Hopfield(num_units=3, num_patterns=0, backend='numpy')"


# -------------------------------------------------------------------------------------------------
# Weights and state_dict


def test_weights_are_exact_hebbian_counts():
    N = 25
    patterns = random_patterns(7, N, 91)
    net = fr.Hopfield(N)
    assert net.num_patterns == 0 and net.num_units == N and not net.weights.any()
    net.store(patterns[:3])
    view = net.weights
    net.store(patterns[3])  # one (N,) pattern
    assert net.store(patterns[4:]) is net
    p = patterns.astype(np.int64)
    expected = p.T @ p
    np.fill_diagonal(expected, 0)
    assert net.num_patterns == 7
    assert net.weights.dtype == np.int32
    np.testing.assert_array_equal(net.weights, expected)
    np.testing.assert_array_equal(view, expected)  # the view follows later stores
    with pytest.raises(ValueError):
        view[0, 1] = 5  # read-only
    np.testing.assert_array_equal(fr.Hopfield(N, patterns).weights, expected)
    net.store(np.zeros((0, N)))
    assert net.num_patterns == 7


def test_state_dict_round_trip():
    N = 10
    a = fr.Hopfield(N, random_patterns(4, N, 101))
    sd = a.state_dict()
    assert set(sd) == {"weight", "num_patterns"} and sd["weight"].dtype == np.int32
    sd["weight"][0, 1] += 100  # a copy
    assert a.weights[0, 1] != sd["weight"][0, 1]
    b = fr.Hopfield(N)
    view = b.weights
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(view, a.weights)
    assert b.num_patterns == 4
    b.store(random_patterns(1, N, 102))
    assert b.num_patterns == 5
    c = fr.Hopfield(N)
    c.load_state_dict({"weight": a.weights.astype(np.float64), "num_patterns": 4})
    np.testing.assert_array_equal(c.weights, a.weights)


@pytest.mark.parametrize(
    "change, error, match",
    [
        (lambda sd: sd.pop("num_patterns"), ValueError, "missing keys"),
        (lambda sd: sd.update(extra=1), ValueError, "unexpected keys"),
        (lambda sd: sd.update(weight=np.zeros((3, 3), np.int32)), ValueError, "shape"),
        (lambda sd: sd["weight"].__setitem__((0, 0), 2), ValueError, "zero diagonal"),
        (lambda sd: sd["weight"].__setitem__((0, 1), 99), ValueError, "symmetric"),
        (lambda sd: sd.update(weight=sd["weight"] + 0.5), ValueError, "integers"),
        (lambda sd: sd.update(weight=sd["weight"] * 2.0**40), ValueError, "lie in"),
        (lambda sd: sd.update(weight=sd["weight"].astype(bool)), TypeError, "real numbers"),
        (lambda sd: sd.update(num_patterns=-1), ValueError, "num_patterns"),
        (lambda sd: sd.update(num_patterns=1.5), ValueError, "num_patterns"),
        (lambda sd: sd.update(num_patterns=[1, 2]), ValueError, "num_patterns"),
    ],
)
def test_load_state_dict_rejects(change, error, match):
    N = 6
    net = fr.Hopfield(N, random_patterns(3, N, 111))
    before = net.state_dict()
    sd = net.state_dict()
    change(sd)
    with pytest.raises(error, match=match):
        net.load_state_dict(sd)
    np.testing.assert_array_equal(net.weights, before["weight"])  # unchanged
    assert net.num_patterns == 3
    with pytest.raises(TypeError, match="mapping"):
        net.load_state_dict([1, 2])


# -------------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize(
    "states, error, match",
    [
        (np.ones(7), ValueError, r"shape \(N=8,\) or \(B, N=8\), got \(7,\)"),
        (np.ones((2, 9)), ValueError, "shape"),
        (np.ones((2, 2, 8)), ValueError, "shape"),
        (np.float64(1.0), ValueError, "shape"),
        (np.array([1, -1, 0, 1, 1, 1, 1, 1]), ValueError, r"only \+1 and -1.*got 0 at index 2"),
        (np.array([[1] * 8, [1, 1, 1, 2, 1, 1, 1, 1]]), ValueError, r"got 2 at index \(1, 3\)"),
        (np.array([1, -1, 0.5, 1, 1, 1, 1, 1]), ValueError, "only"),
        (np.array([1, -1, np.nan, 1, 1, 1, 1, 1]), ValueError, "only"),
        (np.ones(8, dtype=bool), TypeError, "dtype bool"),
        (np.ones(8, dtype=np.uint8), TypeError, "signed integers or floats"),
        (np.ones(8, dtype=complex), TypeError, "dtype complex128"),
        (["a"] * 8, TypeError, "dtype"),
        (None, TypeError, "dtype object"),
    ],
)
def test_bad_states(backend, states, error, match):
    net = fr.Hopfield(8, random_patterns(2, 8, 121), backend=backend)
    with pytest.raises(error, match=match):
        net.recall(states)
    with pytest.raises(error, match=match):
        net.energy(states)
    with pytest.raises(error, match=match.replace("states", "patterns")):
        net.store(states)
    assert net.num_patterns == 2


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"mode": "parallel"}, ValueError, "mode must be one of"),
        ({"mode": "ASYNC"}, ValueError, "mode must be one of"),
        ({"mode": 1}, TypeError, "mode must be a string"),
        ({"max_iters": 0}, ValueError, "max_iters must be >= 1"),
        ({"max_iters": -3}, ValueError, "max_iters must be >= 1"),
        ({"max_iters": 2.5}, TypeError, "max_iters must be an int"),
        ({"max_iters": True}, TypeError, "max_iters must be an int"),
        ({"max_iters": None}, TypeError, "max_iters must be an int"),
        ({"max_iters": 2**70}, ValueError, "max_iters must be < 2\\*\\*63"),
        ({"seed": -1}, ValueError, "seed must be >= 0"),
        ({"seed": "x"}, TypeError, "seed must be"),
    ],
)
def test_bad_recall_arguments(backend, kwargs, error, match):
    net = fr.Hopfield(8, random_patterns(2, 8, 131), backend=backend)
    with pytest.raises(error, match=match):
        net.recall(random_patterns(2, 8, 132), **kwargs)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="num_units must be >= 1"):
        fr.Hopfield(0)
    with pytest.raises(TypeError, match="num_units must be an int"):
        fr.Hopfield(4.0)
    with pytest.raises(ValueError, match="backend must be one of"):
        fr.Hopfield(4, backend="gpu")
    with pytest.raises(ValueError, match="patterns must have shape"):
        fr.Hopfield(4, np.ones((2, 5)))
    with pytest.raises(MemoryError):
        fr.Hopfield(2**40)


def test_store_refuses_int32_overflow():
    net = fr.Hopfield(3)
    w = np.array([[0, 2**31 - 2, 0], [2**31 - 2, 0, 0], [0, 0, 0]], np.int64)
    net.load_state_dict({"weight": w, "num_patterns": 5})
    with pytest.raises(ValueError, match="overflow"):
        net.store(np.ones((2, 3)))
    net.store(np.ones(3))  # exactly reaches 2**31 - 1
    assert net.weights[0, 1] == 2**31 - 1 and net.num_patterns == 6


def test_huge_broadcast_view_is_a_memory_error():
    net = fr.Hopfield(4)
    huge = np.broadcast_to(np.ones(4), (2**40, 4))  # 2**42 values: more than any RAM
    with pytest.raises(MemoryError):
        net.recall(huge)


@native
def test_native_entry_point_checks_everything():
    from fastrnn import _native

    N = 5
    w = fr.Hopfield(N, random_patterns(2, N, 141)).state_dict()["weight"]
    s = random_patterns(3, N, 142)
    order = np.stack([np.random.default_rng(k).permutation(N) for k in range(2)]).astype(np.int32)
    out, conv, iters = _native.hopfield_recall(w, s, "async", 2, order)
    assert out.dtype == np.int8 and conv.dtype == bool and iters.dtype == np.int64
    bad_w = w.copy()
    bad_w[0, 1] += 1
    diag = w.copy()
    diag[2, 2] = 1
    bad_s = s.copy()
    bad_s[1, 4] = 0
    dup = order.copy()
    dup[1, 0] = dup[1, 1]
    out_of_range = order.copy()
    out_of_range[0, 3] = N
    negative = order.copy()
    negative[0, 0] = -1
    cases = [
        ((w.astype(np.int64), s, "async", 2, order), TypeError, "weights must have dtype int32"),
        ((w[:, :4], s, "async", 2, order), ValueError, "weights must have shape"),
        ((bad_w, s, "async", 2, order), ValueError, "symmetric"),
        ((diag, s, "async", 2, order), ValueError, r"zero diagonal, got a nonzero value at \(2, 2\)"),
        ((w, s.astype(np.int32), "async", 2, order), TypeError, "states must have dtype int8"),
        ((w, s[:, :4], "async", 2, order), ValueError, r"states must have shape \(B, N=5\)"),
        ((w, bad_s, "async", 2, order), ValueError, r"only \+1 and -1, got 0 at \(1, 4\)"),
        ((w, s, "both", 2, order), ValueError, "mode must be"),
        ((w, s, "async", 0, order[:0]), ValueError, "max_sweeps must be >= 1"),
        ((w, s, "async", 3, order), ValueError, "order must have shape"),
        ((w, s, "async", 2, None), ValueError, "order .* is required"),
        ((w, s, "sync", 2, order), ValueError, "order must be None"),
        ((w, s, "async", 2, order.astype(np.int64)), TypeError, "order must have dtype int32"),
        ((w, s, "async", 2, dup), ValueError, "permutation.*row 1"),
        ((w, s, "async", 2, out_of_range), ValueError, "permutation.*row 0"),
        ((w, s, "async", 2, negative), ValueError, "permutation.*row 0"),
        ((None, s, "async", 2, order), TypeError, "weights must be an array"),
    ]
    for args, error, match in cases:
        with pytest.raises(error, match=match):
            _native.hopfield_recall(*args)
    with pytest.raises(MemoryError):
        _native.hopfield_recall(w, np.broadcast_to(s[:1], (2**60, N)), "sync", 1, None)
    # Non-contiguous and big-endian inputs are copied, never modified.
    s_f = np.asfortranarray(s)
    w_be = w.astype(">i4")
    out2, _, _ = _native.hopfield_recall(w_be, s_f, "async", 2, order)
    np.testing.assert_array_equal(out2, out)
    empty = _native.hopfield_recall(w, s[:0], "sync", 4, None)
    assert empty[0].shape == (0, N) and empty[1].shape == (0,)


# -------------------------------------------------------------------------------------------------
# The example


def test_example_runs_tiny(capsys):
    spec = importlib.util.spec_from_file_location("hopfield_example", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    rows = example.main(
        [
            "--units",
            "60",
            "--trials",
            "20",
            "--alphas",
            "0.05",
            "0.3",
            "--timing-trials",
            "5" if NATIVE else "0",
        ]
    )
    out = capsys.readouterr().out
    assert "retrieved" in out and "0.050" in out and "0.300" in out
    assert len(rows) == 2
    (a_low, p_low, retrieved_low, _, _), (_, p_high, retrieved_high, _, _) = rows
    assert p_low == 3 and p_high == 18
    assert retrieved_low >= 0.9 and retrieved_high <= 0.5
    if NATIVE:
        assert "identical results: True" in out
