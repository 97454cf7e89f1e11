"""Optimizers for lists of Values (either engine): SGD, Adam and AdamW with PyTorch's update rules.

    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    for step in range(100):
        loss = ...
        opt.zero_grad()
        loss.backward()
        opt.step()

Each update follows ``torch.optim``'s single-tensor code operation by operation, in the same
order, so a parameter ends up where PyTorch (float64) puts it. Not always to the last bit:
on x86-64 PyTorch fuses ``a + alpha * b`` (``add``, ``lerp``, ``addcmul``) into one rounding
with FMA instructions and takes its square roots from MKL, while plain Python rounds each
operation; the two agree to a few units in the last place. Hyperparameters are attributes
(``opt.lr = 0.01`` between steps is how to schedule the learning rate).

A step applies completely or changes nothing: ``step()`` first checks the hyperparameters (as
the constructor does, so a bad ``opt.lr = 'x'`` is caught) and the buffers, and after those
checks no operation of the update can raise. ``load_state_dict`` checks a state the same way.

On compiled-engine parameters ``step()`` and ``zero_grad()`` run one C loop over the
parameters (``micrograd._optim``), the GIL released for large lists, with the same operations
in the same order as the Python loops here, so the same bits; ``opt.last_loop`` says which loop
the last call ran ('c' or 'python'). Parameters of the pure engine, or a mix, take the Python
loop. Moment buffers are ``array('d')``: one float per parameter, shared by both loops.
"""
from __future__ import annotations

import importlib
import math
import operator
from array import array
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from micrograd._ops import is_number
from micrograd.engine import ENGINES, is_value

State = Dict[str, Any]


def _load_c_loops() -> Any:
    """micrograd._optim (the C loops) when the compiled engine is loaded, else None."""
    if "cython" not in ENGINES:
        return None
    try:
        return importlib.import_module("micrograd._optim")
    except ImportError:  # an extension built before _optim existed: the Python loops serve
        return None


_C = _load_c_loops()


def zero_grads(params: Sequence[Any]) -> bool:
    """Set every grad in ``params`` to 0.0. One C loop when ``params`` is a list of
    compiled-engine Values (then returns True); else the Python loop (returns False)."""
    if _C is not None and type(params) is list and _C.zero_grads(params):
        return True
    for p in params:
        p.grad = 0.0
    return False


class Optimizer:
    """Holds the parameters; subclasses define ``step()`` and name the attributes that
    ``state_dict()`` saves: hyperparameters, counters, and buffers (one float per parameter)."""

    hyperparameters: Tuple[str, ...] = ()
    counters: Tuple[str, ...] = ()
    buffers: Tuple[str, ...] = ()
    nonnegative_buffers: Tuple[str, ...] = ()  # second moments: a negative entry is corrupt state

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, **hyperparameters: Any) -> None:
        self.params = _check_params(params)
        for name, value in self._check_hyperparameters(dict(hyperparameters, lr=lr)).items():
            setattr(self, name, value)
        self.last_loop: Optional[str] = None  # 'c' or 'python': the loop the last step()/zero_grad() ran
        self._pointers: Any = None  # the C loop's pointer arrays for self.params, made on first use

    # -- checks shared by the constructor, step() and load_state_dict() ----------------------
    def _check_hyperparameters(self, values: Dict[str, Any]) -> Dict[str, Any]:
        """The hyperparameters normalised (floats, bools, a tuple of floats), or an error.
        Subclasses check all of theirs; this base checks the learning rate only."""
        checked = dict(values)
        if "lr" in checked:
            checked["lr"] = _at_least("learning rate", checked["lr"], 0.0)
        return checked

    def _hyperparameters(self) -> Dict[str, Any]:
        return self._check_hyperparameters({name: getattr(self, name) for name in self.hyperparameters})

    def _checked_buffer(self, name: str, values: Any, copy: bool) -> Optional[array]:
        """Buffer ``name`` as an array('d') of one float per parameter (None stays None). A buffer
        that already is one is returned as is unless ``copy``; anything else is converted."""
        if values is None:
            return None
        n, what = len(self.params), f"{type(self).__name__} state {name!r}"
        if type(values) is array and values.typecode == "d" and not copy:
            buf = values
        else:
            if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
                raise TypeError(f"{what} must be a list of {n} numbers, not {type(values).__name__!r}")
            buf = array("d", [_real(f"{what}[{i}]", x) for i, x in enumerate(values)])
        if len(buf) != n:
            raise ValueError(f"{what} has {len(buf)} entries for {n} parameters")
        if name in self.nonnegative_buffers:
            _check_nonnegative(what, buf)
        return buf

    def _check_state(self) -> Dict[str, Any]:
        """What step() checks first: the hyperparameters, the counters and the buffers as they
        are now (the user may have changed any attribute since the last step). Normalised
        values (e.g. a list assigned as a buffer, now an array) are kept only if all pass."""
        hyper = self._hyperparameters()
        checked = {name: _count(f"{type(self).__name__}.{name}", getattr(self, name)) for name in self.counters}
        for name in self.buffers:
            checked[name] = self._checked_buffer(name, getattr(self, name), copy=False)
        self._check_buffers_fit(hyper, checked, loading=False)
        for name, value in checked.items():
            setattr(self, name, value)
        return hyper

    # -- the C loop -----------------------------------------------------------------------------
    def _c_pointers(self) -> Any:
        """The C loop's view of ``self.params`` (built once, rebuilt when the list changed), or
        None when the C loop does not apply: no extension, or not all compiled-engine Values."""
        if _C is None or type(self.params) is not list:
            return None
        if self._pointers is None or not self._pointers.matches(self.params):
            self._pointers = _C.ParamPointers.build(self.params)
        return self._pointers

    # -- public API -------------------------------------------------------------------------------
    def zero_grad(self) -> None:
        """Set every parameter's grad to 0.0 (``backward()`` accumulates into it)."""
        pointers = self._c_pointers()
        if pointers is not None:
            pointers.zero_grad()
            self.last_loop = "c"
            return
        for p in self.params:
            p.grad = 0.0
        self.last_loop = "python"

    def step(self) -> None:
        raise NotImplementedError

    def state_dict(self) -> State:
        """Hyperparameters and buffers as plain numbers and lists (JSON-serialisable)."""
        state: State = {}
        for name, value in self._hyperparameters().items():
            state[name] = list(value) if isinstance(value, tuple) else value
        for name in self.counters:
            state[name] = getattr(self, name)
        for name in self.buffers:
            buf = getattr(self, name)
            state[name] = None if buf is None else list(buf)
        return state

    def load_state_dict(self, state: State) -> None:
        """Restore what ``state_dict()`` saved, for an optimizer over as many parameters. The
        state is checked like constructor arguments (and buffers: finite numbers, one per
        parameter, second moments not negative); nothing changes unless all of it is valid."""
        expected = set(self.hyperparameters + self.counters + self.buffers)
        if not isinstance(state, dict) or set(state) != expected:
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"{type(self).__name__} state must have the keys {sorted(expected)}, got {got}")
        hyper = self._check_hyperparameters({name: state[name] for name in self.hyperparameters})
        counters = {name: _count(f"{type(self).__name__} state {name!r}", state[name]) for name in self.counters}
        buffers = {name: self._checked_buffer(name, state[name], copy=True) for name in self.buffers}
        self._check_buffers_fit(hyper, buffers, loading=True)
        for name, value in {**hyper, **counters, **buffers}.items():
            setattr(self, name, value)

    def _check_buffers_fit(self, hyper: Dict[str, Any], buffers: Dict[str, Any], loading: bool) -> None:
        """Whether the buffers go with the hyperparameters (subclasses; may fill in ``buffers``)."""

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state["_pointers"] = None  # C pointers are rebuilt on first use, never pickled
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_pointers", None)  # pickled by a version without the C loops
        self.__dict__.setdefault("last_loop", None)

    def __repr__(self) -> str:
        settings = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.hyperparameters)
        return f"{type(self).__name__}({len(self.params)} parameters, {settings})"


class SGD(Optimizer):
    """Stochastic gradient descent, as ``torch.optim.SGD``::

        g = grad + weight_decay * p
        buf = g                                       (first step)
        buf = momentum * buf + (1 - dampening) * g    (later steps)
        g = g + momentum * buf if nesterov else buf   (when momentum != 0)
        p = p - lr * g
    """

    hyperparameters = ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize")
    buffers = ("momentum_buffer",)

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(
            params, lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov,
            maximize=maximize,
        )
        self.momentum_buffer: Optional[array] = None  # made on the first step, as torch does

    def _check_hyperparameters(self, values: Dict[str, Any]) -> Dict[str, Any]:
        h = dict(
            lr=_at_least("learning rate", values["lr"], 0.0),
            momentum=_at_least("momentum value", values["momentum"], 0.0),
            dampening=_real("dampening", values["dampening"]),
            weight_decay=_at_least("weight_decay value", values["weight_decay"], 0.0),
            nesterov=_flag("nesterov", values["nesterov"]),
            maximize=_flag("maximize", values["maximize"]),
        )
        if h["nesterov"] and (h["momentum"] <= 0 or h["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        return h

    def step(self) -> None:
        h = self._check_state()
        lr, momentum, dampening, weight_decay = h["lr"], h["momentum"], h["dampening"], h["weight_decay"]
        nesterov, maximize = h["nesterov"], h["maximize"]
        # From here on nothing can raise: float arithmetic only, on checked floats.
        first = self.momentum_buffer is None
        bufs = self.momentum_buffer
        if momentum != 0 and first:
            bufs = array("d", bytes(8 * len(self.params)))
        pointers = self._c_pointers()
        if pointers is not None:
            pointers.sgd_step(lr, momentum, dampening, weight_decay, nesterov, maximize, first, bufs)
        else:
            for i, p in enumerate(self.params):
                g = -p.grad if maximize else p.grad
                if weight_decay != 0:
                    g = g + weight_decay * p.data
                if momentum != 0:
                    buf = g if first else bufs[i] * momentum + (1 - dampening) * g
                    bufs[i] = buf
                    g = g + momentum * buf if nesterov else buf
                p.data = p.data + -lr * g
        self.momentum_buffer = bufs
        self.last_loop = "python" if pointers is None else "c"


class Adam(Optimizer):
    """Adam, as ``torch.optim.Adam`` (and AdamW with ``decoupled_weight_decay=True``)::

        t += 1
        g = grad + weight_decay * p                   (Adam's L2 penalty), or
        p = p * (1 - lr * weight_decay)               (AdamW's decoupled decay)
        m = m + (1 - beta1) * (g - m)                 (torch's lerp)
        v = v * beta2 + (1 - beta2) * g * g
        denom = sqrt(v) / sqrt(1 - beta2**t) + eps    (v_max = max(v_max, v) instead of v with amsgrad)
        p = p + (-lr / (1 - beta1**t)) * m / denom

    Unlike torch, ``eps`` must be > 0: with ``eps=0`` a parameter whose gradients have all
    been 0 divides 0 by 0, which Python floats raise on (torch silently makes it NaN).
    """

    hyperparameters = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "decoupled_weight_decay")
    counters = ("step_count",)
    buffers = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    nonnegative_buffers = ("exp_avg_sq", "max_exp_avg_sq")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: Tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
    ) -> None:
        super().__init__(
            params, lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize,
            decoupled_weight_decay=decoupled_weight_decay,
        )
        self.step_count = 0
        n = len(self.params)
        self.exp_avg = array("d", bytes(8 * n))
        self.exp_avg_sq = array("d", bytes(8 * n))
        self.max_exp_avg_sq: Optional[array] = array("d", bytes(8 * n)) if self.amsgrad else None

    def _check_hyperparameters(self, values: Dict[str, Any]) -> Dict[str, Any]:
        betas = values["betas"]
        if not isinstance(betas, (tuple, list)):
            raise TypeError(f"betas must be a pair of numbers (beta1, beta2), not {type(betas).__name__!r}")
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        for i, beta in enumerate(betas):
            if not 0.0 <= _real(f"beta parameter at index {i}", beta) < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
        eps = _real("epsilon value", values["eps"])
        if not eps > 0.0:
            raise ValueError(
                f"Invalid epsilon value: {values['eps']}; eps must be > 0, or a parameter whose "
                "gradients have all been 0 divides 0 by 0"
            )
        return dict(
            lr=_at_least("learning rate", values["lr"], 0.0),
            betas=(float(betas[0]), float(betas[1])),
            eps=eps,
            weight_decay=_at_least("weight_decay value", values["weight_decay"], 0.0),
            amsgrad=_flag("amsgrad", values["amsgrad"]),
            maximize=_flag("maximize", values["maximize"]),
            decoupled_weight_decay=_flag("decoupled_weight_decay", values["decoupled_weight_decay"]),
        )

    def _check_buffers_fit(self, hyper: Dict[str, Any], buffers: Dict[str, Any], loading: bool) -> None:
        name = type(self).__name__
        if buffers["exp_avg"] is None or buffers["exp_avg_sq"] is None:
            raise ValueError(f"{name} state: exp_avg and exp_avg_sq must be lists of numbers, not None")
        if hyper["amsgrad"] and buffers["max_exp_avg_sq"] is None:
            if loading:
                raise ValueError(f"{name} state: amsgrad=True needs max_exp_avg_sq, a list of numbers")
            # amsgrad switched on since the last step: the running max starts at 0
            buffers["max_exp_avg_sq"] = array("d", bytes(8 * len(self.params)))

    def step(self) -> None:
        h = self._check_state()
        lr, (beta1, beta2), eps, weight_decay = h["lr"], h["betas"], h["eps"], h["weight_decay"]
        maximize, decoupled = h["maximize"], h["decoupled_weight_decay"]
        # From here on nothing can raise: eps > 0 keeps denom > 0 and the second moments are
        # not negative, so sqrt and / are defined; the rest is float arithmetic.
        t = self.step_count + 1
        # Per step, not per parameter: torch computes these in Python floats too.
        bias_correction1 = 1 - beta1 ** float(t)
        bias_correction2 = 1 - beta2 ** float(t)
        step_size = lr / bias_correction1
        bias_correction2_sqrt = bias_correction2**0.5
        m, v = self.exp_avg, self.exp_avg_sq
        v_max = self.max_exp_avg_sq if h["amsgrad"] else None
        pointers = self._c_pointers()
        if pointers is not None:
            pointers.adam_step(
                lr, beta1, beta2, eps, weight_decay, maximize, decoupled, step_size, bias_correction2_sqrt, m, v, v_max
            )
        else:
            for i, p in enumerate(self.params):
                g = -p.grad if maximize else p.grad
                if weight_decay != 0:
                    if decoupled:
                        p.data = p.data * (1 - lr * weight_decay)
                    else:
                        g = g + weight_decay * p.data
                m[i] = _lerp(m[i], g, 1 - beta1)
                v[i] = v[i] * beta2 + (1 - beta2) * g * g
                second = v[i]
                if v_max is not None:
                    v_max[i] = second = max(v_max[i], second)
                denom = math.sqrt(second) / bias_correction2_sqrt + eps
                p.data = p.data + -step_size * m[i] / denom
        self.step_count = t
        self.last_loop = "python" if pointers is None else "c"


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.01), as ``torch.optim.AdamW``."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: Tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize, decoupled_weight_decay=True
        )


def _lerp(start: float, end: float, weight: float) -> float:
    """``start + weight * (end - start)``, written as PyTorch's lerp kernel writes it: from the
    nearer end, which keeps the result exact at weight 0 and 1."""
    if abs(weight) < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * (1 - weight)


def _check_params(params: Iterable[Any]) -> List[Any]:
    if isinstance(params, (str, bytes)) or not hasattr(params, "__iter__"):
        raise TypeError(f"params must be an iterable of Values (e.g. model.parameters()), not {type(params).__name__!r}")
    params = list(params)
    if not params:
        raise ValueError("optimizer got an empty parameter list")
    seen = set()
    for p in params:
        if not is_value(p):
            raise TypeError(f"optimizer params must be micrograd Values, not {type(p).__name__!r}")
        if id(p) in seen:
            raise ValueError("a parameter appears more than once in params; each would be updated twice per step")
        seen.add(id(p))
    return params


def _real(what: str, value: object) -> float:
    """A finite real number of any numeric type (NumPy's too), as a float; bools and strings
    are not numbers here."""
    if isinstance(value, (bool, str, bytes)) or not is_number(value):
        raise TypeError(f"{what} must be a number, not {type(value).__name__!r}")
    try:
        x = float(value)  # type: ignore[arg-type]
    except (OverflowError, ValueError, TypeError) as exc:
        raise type(exc)(f"{what}: {exc}") from None
    if not math.isfinite(x):
        raise ValueError(f"Invalid {what}: {x} (must be finite)")
    return x


def _at_least(what: str, value: object, low: float) -> float:
    x = _real(what, value)
    if not x >= low:
        raise ValueError(f"Invalid {what}: {value}")
    return x


def _flag(what: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{what} must be True or False, not {type(value).__name__!r}")
    return value


def _count(what: str, value: object) -> int:
    if isinstance(value, bool) or not hasattr(type(value), "__index__"):
        raise TypeError(f"{what} must be an int, not {type(value).__name__!r}")
    n = operator.index(value)
    if n < 0:
        raise ValueError(f"{what} must be >= 0, got {n}")
    return n


def _check_nonnegative(what: str, buf: array) -> None:
    """A second moment is a running mean of squares: a negative entry (a corrupt state) would
    make sqrt() fail halfway through a step. The C loop reports the same first index."""
    i = _C.first_negative(buf) if _C is not None else next((i for i, x in enumerate(buf) if x < 0.0), -1)
    if i >= 0:
        raise ValueError(f"{what}[{i}] is {buf[i]}: a second moment cannot be negative")
