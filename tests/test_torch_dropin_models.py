"""fastrnn.torch inside real torch code: module behaviour, replace(), optimizers, checkpoints,
threads, torch.compile and DistributedDataParallel."""

import importlib.util
import io
import pathlib
import pickle
import socket
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from torch.nn.utils.rnn import pack_padded_sequence  # noqa: E402

import fastrnn  # noqa: E402
import fastrnn.torch as frt  # noqa: E402
from fastrnn import _backend  # noqa: E402
from fastrnn.torch import _layer, _ops  # noqa: E402

NATIVE = pytest.mark.skipif(not _layer.native_available(), reason="native extension not built")


def test_import_fastrnn_does_not_import_torch():
    code = "import sys, fastrnn; print('torch' in sys.modules, 'fastrnn.torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


class Classifier(torch.nn.Module):
    """A PackedSequence classifier with recurrent layers nested three ways."""

    def __init__(self):
        super().__init__()
        self.encoder = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh())
        self.rnns = torch.nn.ModuleList([torch.nn.GRU(4, 5, num_layers=2, bidirectional=True, dropout=0.3)])
        self.lstm = torch.nn.LSTM(10, 4, proj_size=3, batch_first=True)
        self.head = torch.nn.Sequential(torch.nn.Linear(3, 2))

    def forward(self, x, lengths):
        z = self.encoder(x)
        y, _ = self.rnns[0](pack_padded_sequence(z, lengths, batch_first=True, enforce_sorted=False))
        y, (h, _) = self.lstm(y)
        return self.head(h[-1])


def batches(n):
    g = torch.Generator().manual_seed(5)
    for _ in range(n):
        x = torch.randn(6, 7, 3, generator=g, dtype=torch.float64)
        lengths = torch.randint(1, 8, (6,), generator=g)
        yield x, lengths, torch.randint(0, 2, (6,), generator=g)


def train(model, steps=20):
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for step, (x, lengths, target) in enumerate(batches(steps)):
        torch.manual_seed(100 + step)  # dropout masks
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x, lengths), target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
        losses.append(loss.item())
    return losses


@NATIVE
def test_replace_then_train_gives_torchs_losses(monkeypatch):
    torch.manual_seed(0)
    ref = Classifier().double()
    model = Classifier().double()
    model.load_state_dict(ref.state_dict())
    params = list(model.parameters())
    opt_before = torch.optim.SGD(model.parameters(), lr=0.0)  # built before the swap
    assert frt.replace(model) is model
    assert type(model.rnns[0]) is frt.GRU and type(model.lstm) is frt.LSTM
    assert all(a is b for a, b in zip(params, model.parameters()))
    assert opt_before.param_groups[0]["params"][0] is params[0]
    calls = []
    real = _layer.forward
    monkeypatch.setattr(_layer, "forward", lambda *a: calls.append(1) or real(*a))
    losses, losses_ref = train(model), train(ref)
    assert len(calls) == 20 * 3  # every recurrent layer of every step ran natively
    assert max(abs(a - b) for a, b in zip(losses, losses_ref)) < 1e-10
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        assert torch.allclose(p, q, rtol=0, atol=1e-10), name


def test_replace_leaves_subclasses_and_refuses_non_modules():
    class MyLSTM(torch.nn.LSTM):
        pass

    m = torch.nn.Sequential(MyLSTM(2, 3), torch.nn.RNN(2, 3))
    frt.replace(m)
    assert type(m[0]) is MyLSTM and type(m[1]) is frt.RNN
    assert type(frt.replace(torch.nn.GRU(2, 3))) is frt.GRU
    with pytest.raises(TypeError, match="module must be a torch.nn.Module"):
        frt.replace("model")


def test_module_behaves_like_torchs():
    m = frt.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2)
    ref = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2)
    assert isinstance(m, torch.nn.LSTM)
    assert [(k, v.shape) for k, v in m.state_dict().items()] == [
        (k, v.shape) for k, v in ref.state_dict().items()
    ]
    ref.load_state_dict(m.state_dict())  # checkpoints go both ways
    m.flatten_parameters()
    assert repr(m) == "LSTM(3, 4, proj_size=2, num_layers=2, bidirectional=True)"
    m.double()
    assert m.weight_ih_l0.dtype == torch.float64 and m._flat_weights[0] is m.weight_ih_l0
    m.to(torch.float32).eval()
    assert not m.training and m.weight_ih_l0.dtype == torch.float32
    x = torch.randn(5, 2, 3)
    for copy in (pickle.loads(pickle.dumps(m)), _saved_and_loaded(m)):
        assert type(copy) is frt.LSTM
        assert torch.equal(copy(x)[0], m(x)[0])
    r = frt.RNN(3, 4, nonlinearity="relu")
    assert r.mode == "RNN_RELU" and isinstance(r, torch.nn.RNN)


def _saved_and_loaded(m):
    buf = io.BytesIO()
    torch.save(m, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


@NATIVE
def test_threads_follow_torch_unless_fastrnn_was_set(monkeypatch):
    seen = []
    real = _layer.forward
    monkeypatch.setattr(_layer, "forward", lambda *a: seen.append(a[7]) or real(*a))
    monkeypatch.delenv("FASTRNN_NUM_THREADS", raising=False)
    monkeypatch.setitem(_backend._threads, "explicit", False)
    monkeypatch.setitem(_backend._threads, "n", _backend._threads["n"])  # restored afterwards
    m = frt.GRU(3, 4)
    x = torch.randn(5, 2, 3)
    before_torch, before_team = torch.get_num_threads(), fastrnn._native.get_num_threads()
    try:
        torch.set_num_threads(3)
        m(x)
        assert seen[-1] == 3 and fastrnn._native.get_num_threads() == before_team  # restored
        fastrnn.set_num_threads(2)
        assert _backend.threads_were_set()
        m(x)
        assert seen[-1] == 2
    finally:
        torch.set_num_threads(before_torch)
        fastrnn.set_num_threads(before_team)
    monkeypatch.setenv("FASTRNN_NUM_THREADS", "1")
    assert _backend.threads_were_set()


# Importing torch's inductor warns about torch.jit, and dynamo probes .grad of the tensors it
# wraps (torch's own code; a warnings filter that turns warnings into errors exposes both).
def compile_warnings(test):
    test = pytest.mark.filterwarnings("ignore:.*torch.jit.script_method.*:DeprecationWarning")(test)
    return pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not")(test)


def _compiled_and_eager(cell, **compile_kw):
    torch.manual_seed(0)
    ref = getattr(torch.nn, cell)(3, 6, num_layers=2, bidirectional=True)
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), ref)
    ours = frt.replace(
        torch.nn.Sequential(
            torch.nn.Linear(3, 3), getattr(torch.nn, cell)(3, 6, num_layers=2, bidirectional=True)
        )
    )
    ours.load_state_dict(model.state_dict())

    def loss(m, x):
        return m[1](m[0](x))[0].tanh().sum()

    x = torch.randn(7, 4, 3)
    compiled = torch.compile(lambda x: loss(ours, x), **compile_kw)
    results = []
    for f, m in ((compiled, ours), (lambda x: loss(model, x), model)):
        value = f(x)
        value.backward()
        results.append([value.detach(), *(p.grad for p in m.parameters())])
    return results


@NATIVE
@compile_warnings
def test_torch_compile_one_graph_with_allow_rnn():
    """With dynamo's allow_rnn the whole model traces as one graph (fullgraph), the recurrent
    layers as fastrnn's custom ops, and trains to torch's numbers."""
    torch._dynamo.reset()
    before = len(_ops._owners)
    # config.patch, not monkeypatch: pytest 9.2's monkeypatch deletes, on undo, a module attribute that
    # was not in the module's __dict__ (dynamo's config values live behind __getattr__).
    with torch._dynamo.config.patch(allow_rnn=True):
        ours, ref = _compiled_and_eager("LSTM", fullgraph=True)
    for a, b in zip(ours, ref):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)
    assert len(_ops._owners) == before  # the native caches went with the graph's handles


@NATIVE
@compile_warnings
def test_torch_compile_default_breaks_graph_around_the_rnn():
    """Without allow_rnn dynamo will not trace any RNN module: it runs eagerly (natively) between
    compiled pieces, with the same numbers."""
    torch._dynamo.reset()
    ours, ref = _compiled_and_eager("GRU")
    for a, b in zip(ours, ref):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, x, lengths, out_dir):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    calls = []
    real = _layer.forward
    _layer.forward = lambda *a: calls.append(1) or real(*a)  # this process only
    try:
        torch.manual_seed(0)
        model = frt.replace(torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True).double())
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        part = slice(rank * 2, rank * 2 + 2)
        y, _ = ddp(pack_padded_sequence(x[:, part], lengths[part], enforce_sorted=False))
        (y.data.pow(2).sum() * world / x.shape[1]).backward()  # DDP averages: scale to the sum
        torch.save(
            (torch.cat([p.grad.flatten() for p in model.parameters()]), len(calls)),
            f"{out_dir}/grads{rank}.pt",
        )
        # Both ranks reach teardown together: a rank that destroys its group while the other's gloo
        # threads still talk to it can abort the other ("terminate called without an active exception").
        dist.barrier()
    finally:
        dist.destroy_process_group()


@NATIVE
def test_ddp_two_processes_match_one_process(tmp_path):
    """Each process takes half the batch; DDP's averaged gradients equal one process's on all."""
    g = torch.Generator().manual_seed(6)
    x = torch.randn(5, 4, 3, generator=g, dtype=torch.float64)
    lengths = torch.tensor([5, 2, 4, 3])
    torch.multiprocessing.start_processes(
        _ddp_worker, args=(2, _free_port(), x, lengths, tmp_path), nprocs=2, join=True, start_method="spawn"
    )
    torch.manual_seed(0)
    model = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True).double()
    y, _ = model(pack_padded_sequence(x, lengths, enforce_sorted=False))
    (y.data.pow(2).sum() / x.shape[1]).backward()
    whole = torch.cat([p.grad.flatten() for p in model.parameters()])
    for rank in range(2):
        got, native_layers = torch.load(tmp_path / f"grads{rank}.pt")
        assert native_layers == 2
        assert torch.allclose(got, whole, rtol=0, atol=1e-12)


@NATIVE
def test_example_trains_both_ways_to_the_same_losses(capsys):
    path = pathlib.Path(__file__).resolve().parent.parent / "examples" / "torch_dropin.py"
    spec = importlib.util.spec_from_file_location("example_torch_dropin", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    result = example.main(["--steps", "4", "--hidden", "8", "--batch", "4", "--max-len", "12"])
    losses_torch, losses_fastrnn = result["losses"]
    assert len(losses_torch) == 4
    assert max(abs(a - b) for a, b in zip(losses_torch, losses_fastrnn)) < 1e-5
    assert "time per step" in capsys.readouterr().out
