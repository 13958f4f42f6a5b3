"""The docstrings of RNN, LSTM and GRU (what ``help(fastrnn.LSTM)`` shows), kept apart from the code:
the three share their arguments, shapes, ``lengths`` semantics and differences from torch.nn."""

_ARGS = """\
Args:
    input_size: I, the features of each input step.
    hidden_size: H, the features of the hidden state{state}.
    num_layers: stacked layers; layer k > 0 takes layer k-1's output as its input.
    {extra}bias: whether each layer has the biases ``bias_ih_l{{k}}`` and ``bias_hh_l{{k}}``.
    batch_first: x and y are (B, T, features) instead of (T, B, features); the states never are.
    dropout: probability of zeroing each output of every layer but the last, in training mode only
        (inverted dropout: kept values are scaled by 1/(1-p), and backward uses the same mask).
    bidirectional: each layer also runs the sequence backwards (D = 2); the two directions'
        outputs are concatenated along the last axis, forward first.
    {proj}dtype: ``"float32"`` or ``"float64"``: the weights' dtype, which every input must have.
    backend: ``"native"``, ``"numpy"`` or None (the current default, see ``fastrnn.set_backend``).
    seed: seed of ``numpy.random.default_rng``, which draws the initial weights,
        U(-1/sqrt(H), 1/sqrt(H)) as in PyTorch, and then the dropout masks. None: fresh entropy.
    checkpoint_every: None keeps every step's values for backward; an int k (or ``"sqrt"``, k =
        ceil(sqrt(T))) keeps the state every k steps and backward recomputes each segment: the same
        gradients for about sqrt(T) of the memory.
{variant}"""

_SHAPES = """\
Shapes, with T steps, B sequences, D = 2 if bidirectional else 1, L = ``num_layers``{p}:
    - ``x``: ``(T, B, I)``, ``(B, T, I)`` with ``batch_first``, or ``(T, I)`` unbatched;
    - ``y``: ``(T, B, D*{out})``, laid out as ``x`` (unbatched: ``(T, D*{out})``);
    - ``h0``, ``h_n``: ``(D*L, B, {out})``, never batch-first (unbatched: ``(D*L, {out})``){cell}.

``lengths`` (B,) integers in [0, T], any order: each sequence's own length, with exactly the
results of ``torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)`` through
the layer: outputs past a length are 0, the states are those at each sequence's own last step
(``h0`` where the length is 0), the reverse direction starts at each sequence's last step, and no
gradient flows from the padding. Only the steps the sequences take are computed.

Call ``layer(x, hx=None, lengths=None)``, which returns {returns}; then ``layer.backward(dy,
dh_n=None)`` runs BPTT through that forward, returns {grads} and adds every weight's gradient into
``layer.grads`` (``parameters()``, ``state_dict()`` and ``load_state_dict()`` use PyTorch's names:
``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``{names}, ``..._reverse``).

Differences from {torch}:
    - no autograd: ``backward`` differentiates the last training-mode forward (eval mode keeps no
      cache, so a backward after it raises RuntimeError);
    - ``lengths`` instead of a PackedSequence (fastrnn.torch takes PackedSequence);
    - float32/float64 only, and inputs must have the layer's dtype (no casting); no ``device``;
    - ``dtype``, ``backend``, ``seed`` and ``checkpoint_every`` are fastrnn's own arguments{own};
    - dropout masks come from the layer's seeded generator, not from torch's;
    - every argument is checked: a bad one raises ValueError or TypeError naming it.
"""


def _doc(summary: str, **parts: str) -> str:
    """The summary, then the shared sections with this layer's ``parts`` filled in."""
    return f"{summary}\n\n{_ARGS.format(**parts)}\n{_SHAPES.format(**parts)}"


RNN = _doc(
    "Elman RNN, h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), act tanh or ReLU; a\n"
    "``torch.nn.RNN`` with an explicit ``backward``.",
    state="",
    extra='nonlinearity: ``"tanh"`` or ``"relu"``.\n    ',
    proj="",
    variant="",
    p="",
    out="H",
    cell="",
    returns="``(y, h_n)``",
    grads="``(dx, dh0)``",
    names="",
    torch="torch.nn.RNN",
    own="",
)

GRU = _doc(
    "Gated recurrent unit (gate rows r, z, n); a ``torch.nn.GRU`` with an explicit ``backward``.\n\n"
    "``reset_after=True`` (PyTorch's form) computes n = tanh(W_in x + b_in + r * (W_hn h + b_hn));\n"
    "``reset_after=False`` is the original GRU (Cho et al. 2014; ONNX linear_before_reset=0, Keras\n"
    "reset_after=False), n = tanh(W_in x + b_in + W_hn (r * h) + b_hn), with the same parameters.",
    state="",
    extra="",
    proj="",
    variant="    reset_after: True for PyTorch's GRU, False for the original one (see above).\n",
    p="",
    out="H",
    cell="",
    returns="``(y, h_n)``",
    grads="``(dx, dh0)``",
    names="",
    torch="torch.nn.GRU",
    own=", as is ``reset_after``",
)

LSTM = _doc(
    "Long short-term memory (gate rows i, f, g, o), optionally with a projection or peepholes; a\n"
    "``torch.nn.LSTM`` with an explicit ``backward``. The states are pairs: ``hx`` is (h0, c0).",
    state=" h before any projection and of the cell state c",
    extra="",
    proj="proj_size: P > 0 projects h to P features with ``weight_hr_l{k}`` (P, H); 0: none.\n    ",
    variant="    peepholes: adds ``weight_ph_l{k}`` ``(3*H,)``, in the order (i, f, o): i and f see\n"
    "        p_i * c_{t-1} and p_f * c_{t-1}, o sees p_o * c_t (ONNX's P).\n",
    p=", P = ``proj_size`` or H",
    out="P",
    cell="; ``c0``, ``c_n``: ``(D*L, B, H)``",
    returns="``(y, (h_n, c_n))``",
    grads="``(dx, (dh0, dc0))`` (``dh_n`` is None or a pair ``(dh_n, dc_n)``)",
    names=", ``weight_hr_l0``, ``weight_ph_l0``",
    torch="torch.nn.LSTM",
    own=", as are ``peepholes``",
)
