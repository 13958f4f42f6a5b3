"""Optimizers over a model's Parameters: SGD, Adagrad, RMSprop, Adam and AdamW.

The update rules are PyTorch's (``torch.optim``, single parameter group, ``maximize=False``), so a
model trained here and one trained with torch on the same gradients follow the same trajectory.

Conventions:

- ``params`` is a model (anything with ``parameters()``), one Parameter, or an iterable of Parameters
  (objects with ``.data`` and ``.grad`` NumPy arrays; ``fastrnn.Parameter`` is one).
- ``step()`` updates every ``p.data`` IN PLACE from ``p.grad`` (the arrays are never replaced: layers
  hold references to them); ``p.grad`` is never modified. Parameters whose ``grad`` is None are skipped
  (their state does not advance).
- State is kept per parameter, by position in ``params``, in the parameter's dtype (float32 or float64).
- Hyper-parameters are plain attributes (``opt.lr = 1e-4`` works, e.g. for a schedule); they are
  checked at construction, at every ``step()`` and on ``load_state_dict()``; a bad one raises ValueError
  naming it.
- ``state_dict()`` returns only plain Python numbers, strings, lists and NumPy arrays (copies)::

      {"optimizer": "Adam",
       "hyperparams": {"lr": 0.001, "betas": [0.9, 0.999], "eps": 1e-08, ...},
       "state": [{"step": 3, "exp_avg": array, "exp_avg_sq": array},   # one dict per parameter,
                 {}, ...]}                                              # {} = not stepped yet

  so it can be stored in an .npz file with a JSON header. ``load_state_dict()`` checks the optimizer
  kind, the parameter count, every entry's keys and every array's shape before changing anything.
"""

import math
import numbers

import numpy as np

from ._checks import flag, real

__all__ = ["Optimizer", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


# -------------------------------------------------------------------------------------------------
# Parameter collection and hyper-parameter checks


def _collect(params):
    """The list of parameter objects from a model, one Parameter or an iterable of Parameters."""
    if hasattr(params, "parameters") and callable(params.parameters):
        params = params.parameters()
    elif hasattr(params, "data") and hasattr(params, "grad"):
        params = [params]
    elif isinstance(params, np.ndarray) or not hasattr(params, "__iter__"):
        raise TypeError(
            "params must be a model with parameters(), a Parameter or an iterable of "
            f"Parameters, got {type(params).__name__}"
        )
    params = list(params)
    if not params:
        raise ValueError("optimizer got an empty parameter list")
    seen = set()
    unique = []  # (index in params, parameter) of each weight's first entry
    for i, p in enumerate(params):
        if not (hasattr(p, "data") and hasattr(p, "grad")):
            raise TypeError(
                f"params[{i}] must have .data and .grad arrays (a fastrnn.Parameter), got {type(p).__name__}"
            )
        if not isinstance(p.data, np.ndarray) or p.data.dtype not in _FLOATS:
            raise TypeError(
                f"params[{i}].data must be a float32 or float64 NumPy array, got "
                f"{getattr(p.data, 'dtype', type(p.data).__name__)}"
            )
        if id(p) in seen:
            raise ValueError(f"params[{i}] appears more than once in the parameter list")
        seen.add(id(p))
        # Two wrappers of one weight (a shared layer or tied weights seen through two names) are one
        # parameter, stepped once, as torch's parameters() lists it once. Arrays that merely overlap
        # would be stepped twice with different gradients: refused.
        for j, q in unique:
            if q.data is p.data and q.grad is p.grad:
                break
            if np.may_share_memory(q.data, p.data):
                raise ValueError(
                    f"params[{i}] and params[{j}] share memory without being the same weight "
                    "(same data and grad arrays): each step would update it twice"
                )
        else:
            unique.append((i, p))
    return [p for _, p in unique]


def _at_least(name, value, low=0.0):
    value = real(name, value, finite=True)
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return value


def _positive(name, value):
    value = real(name, value, finite=True)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def _closed_unit(name, value):
    value = real(name, value, finite=True)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return value


def _betas(value):
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"betas must be a pair (beta1, beta2), got {value!r}")
    out = []
    for k, b in enumerate(value):
        b = real(f"betas[{k}]", b, finite=True)
        if not 0.0 <= b < 1.0:
            raise ValueError(f"betas[{k}] must be in [0, 1), got {b}")
        out.append(b)
    return tuple(out)


# -------------------------------------------------------------------------------------------------
# The base class


class Optimizer:
    """Base class: parameter handling, ``zero_grad``, ``step`` and (de)serialisation.

    Subclasses define ``_HYPER`` (name -> checker), ``_state_arrays()`` (the per-parameter array names
    their state holds under the current hyper-parameters), ``_HAS_STEP`` and ``_update(w, g, state)``.
    """

    _HYPER = {}
    _HAS_STEP = True

    def __init__(self, params, **hyper):
        self.params = _collect(params)
        for name, value in hyper.items():
            setattr(self, name, value)
        self._validate()
        self.state = [{} for _ in self.params]

    # -- hyper-parameters -------------------------------------------------------------------------

    def _validate(self):
        """Checks every hyper-parameter attribute (raising ValueError/TypeError naming it) and stores
        the normalised value."""
        for name, check in self._HYPER.items():
            setattr(self, name, check(name, getattr(self, name)))
        self._check_combination()

    def _check_combination(self):
        pass

    def _hyperparams(self):
        return {
            name: (list(v) if isinstance(v, tuple) else v)
            for name in self._HYPER
            for v in [getattr(self, name)]
        }

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._hyperparams().items())
        return f"{type(self).__name__}({len(self.params)} parameters, {args})"

    # -- training -----------------------------------------------------------------------------------

    def zero_grad(self):
        """Sets every gradient to zero in place (layers accumulate into these arrays)."""
        for p in self.params:
            if p.grad is not None:
                p.grad[...] = 0

    def step(self):
        """One update of every parameter that has a gradient."""
        self._validate()
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            w = p.data
            g = np.asarray(p.grad)
            if g.shape != w.shape:
                raise ValueError(
                    f"params[{i}] ({getattr(p, 'name', '?')}): grad shape {g.shape} does "
                    f"not match data shape {w.shape}"
                )
            if g.dtype != w.dtype:
                g = g.astype(w.dtype)
            state = self.state[i]
            if not state:
                state.update(self._init_state(w))
            if self._HAS_STEP:
                state["step"] += 1
            self._update(w, g, state)

    def _init_state(self, w):
        state = {"step": 0} if self._HAS_STEP else {}
        for name in self._state_arrays():
            state[name] = np.zeros_like(w)
        return state

    def _state_arrays(self):
        return ()

    def _update(self, w, g, state):
        raise NotImplementedError

    # -- (de)serialisation ------------------------------------------------------------------------

    def state_dict(self):
        """A copy of the hyper-parameters and the per-parameter state (plain numbers and arrays)."""
        state = []
        for s in self.state:
            entry = {}
            for k, v in s.items():
                entry[k] = v.copy() if isinstance(v, np.ndarray) else int(v)
            state.append(entry)
        return {"optimizer": type(self).__name__, "hyperparams": self._hyperparams(), "state": state}

    def load_state_dict(self, state_dict):
        """Restores hyper-parameters and state saved by ``state_dict()`` of the same optimizer kind
        over the same parameters (count, order and shapes are checked). Arrays are copied and cast to
        each parameter's dtype. Nothing changes unless everything checks out."""
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
        missing = [k for k in ("optimizer", "hyperparams", "state") if k not in state_dict]
        if missing:
            raise ValueError(f"load_state_dict: missing keys {missing}")
        kind = state_dict["optimizer"]
        if kind != type(self).__name__:
            raise ValueError(
                f"load_state_dict: state is for optimizer {kind!r}, this is {type(self).__name__!r}"
            )
        hyper = state_dict["hyperparams"]
        if not hasattr(hyper, "keys"):
            raise TypeError("load_state_dict: hyperparams must be a mapping")
        if set(hyper) != set(self._HYPER):
            raise ValueError(
                f"load_state_dict: hyperparams must have keys {sorted(self._HYPER)}, got {sorted(hyper)}"
            )
        state = state_dict["state"]
        if isinstance(state, (str, bytes)) or not hasattr(state, "__len__"):
            raise TypeError("load_state_dict: state must be a list with one dict per parameter")
        if len(state) != len(self.params):
            raise ValueError(
                f"load_state_dict: state has {len(state)} entries, the optimizer has "
                f"{len(self.params)} parameters"
            )

        # Check the hyper-parameters on a scratch copy so a failure leaves self untouched.
        scratch = object.__new__(type(self))
        for name in self._HYPER:
            setattr(scratch, name, hyper[name])
        scratch._validate()
        arrays = scratch._state_arrays()
        want = set(arrays) | ({"step"} if self._HAS_STEP else set())

        new_state = []
        for i, (entry, p) in enumerate(zip(state, self.params)):
            if not hasattr(entry, "keys"):
                raise TypeError(f"load_state_dict: state[{i}] must be a dict")
            if len(entry) == 0 or not want:
                if len(entry):
                    raise ValueError(
                        f"load_state_dict: state[{i}] must be empty for "
                        f"{type(self).__name__} with these hyperparams, got keys "
                        f"{sorted(entry)}"
                    )
                new_state.append({})
                continue
            if set(entry) != want:
                raise ValueError(
                    f"load_state_dict: state[{i}] must have keys {sorted(want)}, got {sorted(entry)}"
                )
            new = {}
            if self._HAS_STEP:
                step = entry["step"]
                if isinstance(step, np.ndarray) and step.ndim == 0:
                    step = step.item()
                if isinstance(step, (bool, np.bool_)) or not isinstance(step, numbers.Integral) or step < 0:
                    raise ValueError(f"load_state_dict: state[{i}]['step'] must be an int >= 0, got {step!r}")
                new["step"] = int(step)
            for name in arrays:
                arr = np.asarray(entry[name])
                if arr.dtype.kind not in "fiu":
                    raise TypeError(
                        f"load_state_dict: state[{i}][{name!r}] must hold real numbers, got dtype {arr.dtype}"
                    )
                if arr.shape != p.data.shape:
                    raise ValueError(
                        f"load_state_dict: state[{i}][{name!r}] must have shape "
                        f"{p.data.shape}, got {arr.shape}"
                    )
                new[name] = np.array(arr, dtype=p.data.dtype, copy=True)
            new_state.append(new)

        for name in self._HYPER:
            setattr(self, name, getattr(scratch, name))
        self.state = new_state


# -------------------------------------------------------------------------------------------------
# The optimizers


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, dampening, Nesterov momentum and L2 weight
    decay (``torch.optim.SGD``)::

        g = grad + weight_decay * w
        buf = g (first step), else momentum * buf + (1 - dampening) * g     # if momentum > 0
        g = g + momentum * buf if nesterov else buf                          # if momentum > 0
        w -= lr * g
    """

    _HYPER = {
        "lr": _at_least,
        "momentum": _at_least,
        "dampening": _closed_unit,
        "weight_decay": _at_least,
        "nesterov": flag,
    }
    _HAS_STEP = False

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(
            params,
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
        )

    def _check_combination(self):
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("nesterov requires momentum > 0 and dampening = 0")

    def _init_state(self, w):
        return {}  # the momentum buffer starts as the first gradient, see _update

    def _state_arrays(self):
        return ("momentum_buffer",) if self.momentum > 0 else ()

    def _update(self, w, g, state):
        if self.weight_decay:
            g = g + self.weight_decay * w
        if self.momentum > 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.array(g, copy=True)
            else:
                buf *= self.momentum
                buf += (1.0 - self.dampening) * g
            g = g + self.momentum * buf if self.nesterov else buf
        w -= self.lr * g


class Adagrad(Optimizer):
    """Adagrad (``torch.optim.Adagrad``)::

    g = grad + weight_decay * w
    clr = lr / (1 + (step - 1) * lr_decay)
    sum += g * g                      # sum starts at initial_accumulator_value
    w -= clr * g / (sqrt(sum) + eps)
    """

    _HYPER = {
        "lr": _at_least,
        "lr_decay": _at_least,
        "weight_decay": _at_least,
        "initial_accumulator_value": _at_least,
        "eps": _positive,
    }

    def __init__(
        self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10
    ):
        super().__init__(
            params,
            lr=lr,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
        )

    def _state_arrays(self):
        return ("sum",)

    def _init_state(self, w):
        state = super()._init_state(w)
        state["sum"][...] = self.initial_accumulator_value
        return state

    def _update(self, w, g, state):
        if self.weight_decay:
            g = g + self.weight_decay * w
        clr = self.lr / (1.0 + (state["step"] - 1) * self.lr_decay)
        s = state["sum"]
        s += g * g
        w -= clr * (g / (np.sqrt(s) + self.eps))


class RMSprop(Optimizer):
    """RMSprop, optionally centered and with momentum (``torch.optim.RMSprop``)::

    g = grad + weight_decay * w
    square_avg = alpha * square_avg + (1 - alpha) * g * g
    if centered: grad_avg = alpha * grad_avg + (1 - alpha) * g
                 avg = sqrt(square_avg - grad_avg**2) + eps
    else:        avg = sqrt(square_avg) + eps
    if momentum > 0: buf = momentum * buf + g / avg; w -= lr * buf
    else:            w -= lr * g / avg
    """

    _HYPER = {
        "lr": _at_least,
        "alpha": _closed_unit,
        "eps": _positive,
        "weight_decay": _at_least,
        "momentum": _at_least,
        "centered": flag,
    }

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
        super().__init__(
            params,
            lr=lr,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
        )

    def _state_arrays(self):
        names = ["square_avg"]
        if self.momentum > 0:
            names.append("momentum_buffer")
        if self.centered:
            names.append("grad_avg")
        return tuple(names)

    def _update(self, w, g, state):
        if self.weight_decay:
            g = g + self.weight_decay * w
        a = self.alpha
        sq = state["square_avg"]
        sq *= a
        sq += (1.0 - a) * (g * g)
        if self.centered:
            ga = state["grad_avg"]
            ga += (1.0 - a) * (g - ga)
            # Mathematically >= 0; clamp the rounding so sqrt never sees a tiny negative.
            avg = np.sqrt(np.maximum(sq - ga * ga, 0))
        else:
            avg = np.sqrt(sq)
        avg += self.eps
        if self.momentum > 0:
            buf = state["momentum_buffer"]
            buf *= self.momentum
            buf += g / avg
            w -= self.lr * buf
        else:
            w -= self.lr * (g / avg)


class Adam(Optimizer):
    """Adam, optionally AMSGrad, with L2 weight decay added to the gradient (``torch.optim.Adam``)::

    g = grad + weight_decay * w
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    v_max = max(v_max, v) (amsgrad; then v_max replaces v below)
    w -= lr / (1 - beta1**step) * m / (sqrt(v) / sqrt(1 - beta2**step) + eps)
    """

    _HYPER = {
        "lr": _at_least,
        "betas": lambda name, v: _betas(v),
        "eps": _positive,
        "weight_decay": _at_least,
        "amsgrad": flag,
    }
    _DECOUPLED = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)

    def _state_arrays(self):
        return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if self.amsgrad else ())

    def _update(self, w, g, state):
        b1, b2 = self.betas
        if self.weight_decay:
            if self._DECOUPLED:
                w *= 1.0 - self.lr * self.weight_decay
            else:
                g = g + self.weight_decay * w
        t = state["step"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m += (1.0 - b1) * (g - m)
        v *= b2
        v += (1.0 - b2) * (g * g)
        if self.amsgrad:
            vmax = state["max_exp_avg_sq"]
            np.maximum(vmax, v, out=vmax)
            v = vmax
        step_size = self.lr / (1.0 - b1**t)
        denom = np.sqrt(v) / math.sqrt(1.0 - b2**t)
        denom += self.eps
        w -= step_size * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (``torch.optim.AdamW``): each step first scales
    ``w *= 1 - lr * weight_decay``, then applies the Adam update to the raw gradient."""

    _DECOUPLED = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
