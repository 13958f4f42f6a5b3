"""Generation: Stepper (stateful step-by-step inference), sample(), CharVocab."""

import json

import numpy as np
import pytest

import fastrnn as fr
from fastrnn.generate import CharVocab, Stepper, next_token, sample

from helpers import BACKENDS, NATIVE

LAYERS = {"lstm": fr.LSTM, "gru": fr.GRU, "rnn": fr.RNN}
TOL = {np.float32: 1e-6, np.float64: 1e-12}


def _backends():
    return [b for b in BACKENDS if b == "numpy" or NATIVE]


def char_model(kind="lstm", V=7, E=5, H=8, num_layers=2, dtype=np.float32, seed=0, **kw):
    dt = np.dtype(dtype).name
    return fr.Sequential(
        fr.Embedding(V, E, dtype=dt, seed=seed),
        LAYERS[kind](E, H, num_layers=num_layers, dtype=dt, seed=seed + 1, **kw),
        fr.Linear(H, V, dtype=dt, seed=seed + 2),
    )


def close(a, b, dtype):
    np.testing.assert_allclose(a, b, rtol=0, atol=TOL[dtype] * max(1.0, np.abs(b).max()))


# -------------------------------------------------------------------------------------------------
# Stepper agrees with the full forward


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_step_by_step_equals_full_forward(kind, dtype, backend):
    with fr.use_backend(backend):
        m = char_model(kind, dtype=dtype).eval()
        tokens = np.random.default_rng(1).integers(0, 7, size=(12, 3))  # (T, B)
        full = m(tokens)
        s = Stepper(m, batch_size=3)
        steps = np.stack([s.step(tokens[t]) for t in range(12)])
        assert steps.dtype == dtype and steps.shape == (12, 3, 7)
        close(steps, full, dtype)
        # the carried state is the full forward's h_n
        _, hn = m[1](m[0](tokens))
        h = hn[0] if kind == "lstm" else hn
        got = s.state[0][0] if kind == "lstm" else s.state[0]
        close(got, h, dtype)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_prime_then_step_equals_full_forward(kind):
    m = char_model(kind, dtype=np.float64)
    tokens = np.random.default_rng(2).integers(0, 7, size=20)  # unbatched (T,)
    full = m.eval()(tokens)
    s = Stepper(m)
    last = s.prime(tokens[:8])
    assert last.shape == (7,)
    close(last, full[7], np.float64)
    rest = np.stack([s.step(t) for t in tokens[8:]])
    close(rest, full[8:], np.float64)
    # prime after prime continues the state too
    s.reset()
    s.prime(tokens[:5])
    close(s.prime(tokens[5:]), full[-1], np.float64)


def test_single_layer_features_and_projection():
    lstm = fr.LSTM(4, 6, num_layers=2, proj_size=3, dtype="float64", seed=0)
    x = np.random.default_rng(0).standard_normal((9, 2, 4))
    y, (h, c) = lstm.eval()(x)
    s = Stepper(lstm, batch_size=2)
    out = np.stack([s.step(x[t]) for t in range(9)])
    close(out, y, np.float64)
    sh, sc = s.state[0]
    close(sh, h, np.float64)
    close(sc, c, np.float64)
    # unbatched single-sequence stepping
    s.reset(1)
    out1 = np.stack([s.step(x[t, 0]) for t in range(9)])
    close(out1, y[:, 0], np.float64)


def test_batch_first_prime():
    m = fr.Sequential(
        fr.Embedding(7, 5, seed=0), fr.GRU(5, 8, batch_first=True, seed=1), fr.Linear(8, 7, seed=2)
    ).eval()
    tok = np.random.default_rng(3).integers(0, 7, size=(2, 10))  # (B, T)
    full = m(tok)  # (B, T, V)
    s = Stepper(m, batch_size=2)
    close(s.prime(tok[:, :6]), full[:, 5], np.float32)
    close(s.step(tok[:, 6]), full[:, 6], np.float32)


def test_bidirectional_rejected():
    m = fr.Sequential(fr.Embedding(7, 5), fr.LSTM(5, 8, bidirectional=True), fr.Linear(16, 7))
    with pytest.raises(ValueError, match="bidirectional"):
        Stepper(m)
    with pytest.raises(ValueError, match="bidirectional"):
        sample(m, [1, 2], 3)


def test_stepper_bad_arguments():
    m = char_model()
    with pytest.raises(ValueError, match="recurrent"):
        Stepper(fr.Sequential(fr.Embedding(3, 2), fr.Linear(2, 3)))
    s = Stepper(m)
    with pytest.raises(TypeError, match="batch_size"):
        s.reset(1.0)
    with pytest.raises(ValueError, match="batch_size"):
        s.reset(0)
    with pytest.raises(TypeError, match="integer tokens"):
        s.step(np.array([1.0]))
    s.reset(2)
    with pytest.raises(ValueError, match="batch_size"):
        s.step(np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="batch_size 1"):
        s.step(3)
    with pytest.raises(ValueError, match="empty"):
        s.prime(np.zeros((0, 2), np.int64))
    lstm = Stepper(fr.LSTM(4, 6))
    with pytest.raises(TypeError, match="dtype"):
        lstm.step(np.zeros(4, np.float64))
    with pytest.raises(ValueError, match="input_size"):
        lstm.step(np.zeros(5, np.float32))


def test_stepper_puts_model_in_eval_and_keeps_no_cache():
    m = char_model()
    s = Stepper(m)
    assert not m.training
    s.step(1)
    with pytest.raises(RuntimeError, match="eval"):
        m.backward(np.zeros((1, 7), np.float32))


# -------------------------------------------------------------------------------------------------
# Sampling


def test_greedy_equals_argmax_of_full_forward_replay():
    m = char_model("lstm", V=11, H=16, seed=3)
    prime = np.array([1, 4, 2, 9])
    ids = sample(m, prime, 25, temperature=0)
    assert ids.dtype == np.int64 and ids.shape == (25,)
    seq = np.concatenate([prime, ids[:-1]])
    logits = m.eval()(seq)
    np.testing.assert_array_equal(ids, logits[len(prime) - 1 :].argmax(axis=-1))
    # top_k=1 is greedy at any temperature
    np.testing.assert_array_equal(sample(m, prime, 25, temperature=1.7, top_k=1, seed=5), ids)


def test_seeded_sampling_reproducible():
    m = char_model(V=11, seed=4)
    a = sample(m, [1, 2, 3], 40, seed=123)
    b = sample(m, [1, 2, 3], 40, seed=123)
    c = sample(m, [1, 2, 3], 40, seed=124)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    g1, g2 = np.random.default_rng(9), np.random.default_rng(9)
    np.testing.assert_array_equal(sample(m, [1], 10, seed=g1), sample(m, [1], 10, seed=g2))


def test_temperature_concentrates_distribution():
    logits = np.array([2.0, 1.0, 0.5, 0.0, -1.0])
    rng = np.random.default_rng(0)
    n = 4000
    counts = {}
    for t in (0.25, 1.0, 4.0):
        draws = np.array([next_token(logits, t, None, rng) for _ in range(n)])
        counts[t] = np.bincount(draws, minlength=5) / n
    # the top token's share falls as temperature rises, towards uniform
    assert counts[0.25][0] > counts[1.0][0] > counts[4.0][0]
    p1 = np.exp(logits - logits.max())
    p1 /= p1.sum()
    np.testing.assert_allclose(counts[1.0], p1, atol=0.03)  # ~5 sigma at n=4000
    assert counts[4.0].min() > 0.1  # nearly flat at high temperature
    assert counts[0.25][0] > 0.95


def test_top_k_filters_and_softmax_is_stable():
    rng = np.random.default_rng(1)
    logits = np.array([1000.0, 999.0, 998.0, -1e4], np.float32)  # exp would overflow
    draws = {next_token(logits, 1.0, 2, rng) for _ in range(300)}
    assert draws == {0, 1}
    draws = {next_token(logits, 1.0, None, rng) for _ in range(300)}
    assert draws == {0, 1, 2}
    assert next_token(logits, 1.0, 100, rng) in (0, 1, 2)  # top_k > V: all allowed
    with pytest.raises(ValueError, match="non-finite"):
        next_token(np.array([0.0, np.nan]), 1.0, None, rng)


def test_sample_bad_arguments():
    m = char_model()
    v = CharVocab("abcdefg")
    for kwargs, exc, word in [
        (dict(length=-1), ValueError, "length"),
        (dict(length=2.0), TypeError, "length"),
        (dict(temperature=-0.1), ValueError, "temperature"),
        (dict(temperature=float("nan")), ValueError, "temperature"),
        (dict(temperature="hot"), TypeError, "temperature"),
        (dict(top_k=0), ValueError, "top_k"),
        (dict(top_k=2.5), TypeError, "top_k"),
        (dict(seed=-1), ValueError, "seed"),
        (dict(seed="x"), TypeError, "seed"),
        (dict(vocab=3), TypeError, "vocab"),
    ]:
        args = dict(length=3)
        args.update(kwargs)
        with pytest.raises(exc, match=word):
            sample(m, [1, 2], **args)
    with pytest.raises(ValueError, match="prime"):
        sample(m, [], 3)
    with pytest.raises(TypeError, match="prime"):
        sample(m, [0.5, 1.5], 3)
    with pytest.raises(TypeError, match="vocab"):
        sample(m, "abc", 3)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        sample(m, "abz", 3, vocab=v)
    with pytest.raises(ValueError, match="token model"):
        sample(fr.LSTM(3, 4), [1], 3)
    assert sample(m, [1], 0).shape == (0,)


def test_sample_with_vocab_and_decode_function():
    m = char_model(seed=7)
    v = CharVocab("abcdefg")
    ids, text = sample(m, "abc", 12, seed=0, vocab=v)
    assert text == v.decode(ids) and len(text) == 12
    ids2, text2 = sample(m, v.encode("abc"), 12, seed=0, vocab=lambda a: "-".join(map(str, a)))
    np.testing.assert_array_equal(ids, ids2)
    assert text2 == "-".join(map(str, ids))


# -------------------------------------------------------------------------------------------------
# CharVocab


def test_char_vocab_round_trip():
    text = "hello, wörld!\n"
    v = CharVocab.from_text(text)
    assert v.chars == "".join(sorted(set(text))) and len(v) == len(set(text))
    ids = v.encode(text)
    assert ids.dtype == np.int64
    assert v.decode(ids) == text
    assert v.decode(list(ids)) == text and v.decode([]) == ""
    d = json.loads(json.dumps(v.to_dict()))
    assert CharVocab.from_dict(d) == v


def test_char_vocab_bad_input():
    v = CharVocab.from_text("abc")
    with pytest.raises(ValueError, match="'z'"):
        v.encode("abz")
    with pytest.raises(TypeError):
        v.encode(b"abc")
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        v.decode([0, 3])
    with pytest.raises(TypeError):
        v.decode([0.0])
    with pytest.raises(ValueError, match="unique"):
        CharVocab("aab")
    with pytest.raises(ValueError):
        CharVocab.from_text("")
    with pytest.raises(ValueError):
        CharVocab.from_dict({"type": "Other", "chars": "ab"})
    with pytest.raises(TypeError):
        CharVocab.from_dict("ab")


# -------------------------------------------------------------------------------------------------
# End to end: learn "abc" repeated, then sample continues it


def test_train_then_sample_continues_pattern():
    text = "abcd" * 12
    v = CharVocab.from_text(text)
    V = len(v)
    m = fr.Sequential(fr.Embedding(V, 8, seed=0), fr.LSTM(8, 16, seed=1), fr.Linear(16, V, seed=2))
    data = v.encode(text)
    x, y = data[:-1], data[1:]
    opt = fr.optim.Adam(m.parameters(), lr=0.05)
    m.train()
    for _ in range(60):
        opt.zero_grad()
        loss, dlogits = fr.losses.cross_entropy(m(x), y)
        m.backward(dlogits)
        opt.step()
    assert loss < 0.05
    ids, out = sample(m, "ab", 20, temperature=0.5, seed=0, vocab=v)
    assert out == ("cdab" * 5)
    _, greedy = sample(m, "d", 8, temperature=0, vocab=v)
    assert greedy == "abcdabcd"


def test_sample_restores_training_mode_and_accepts_stepper():
    m = char_model(seed=8)
    assert m.training
    a = sample(m, [1, 2], 6, seed=3)
    assert m.training and m[1].training  # put back in training mode
    s = Stepper(m)
    s.reset(2)
    b = sample(s, [1, 2], 6, seed=3)  # a Stepper is reset to batch size 1 and used
    np.testing.assert_array_equal(a, b)
    assert s.batch_size == 1 and not m.training


def test_numpy_and_native_steppers_agree():
    if not NATIVE:
        pytest.skip("native extension not built")
    m = char_model("gru", dtype=np.float64, seed=9)
    tok = np.random.default_rng(4).integers(0, 7, size=15)
    outs = {}
    for backend in ("numpy", "native"):
        with fr.use_backend(backend):
            s = Stepper(m)
            outs[backend] = np.stack([s.step(t) for t in tok])
    close(outs["native"], outs["numpy"], np.float64)
