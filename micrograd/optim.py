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
"""
from __future__ import annotations

import math
from typing import Any, Dict, Iterable, List, Optional, Tuple

from micrograd.engine import is_value

State = Dict[str, Any]


class Optimizer:
    """Holds the parameters; subclasses define ``step()`` and name the attributes that
    ``state_dict()`` saves: hyperparameters, counters, and buffers (one float per parameter)."""

    hyperparameters: Tuple[str, ...] = ()
    counters: Tuple[str, ...] = ()
    buffers: Tuple[str, ...] = ()

    def __init__(self, params: Iterable[Any], lr: float) -> None:
        self.params = _check_params(params)
        _check_at_least("learning rate", lr, 0.0)
        self.lr = lr

    def zero_grad(self) -> None:
        """Set every parameter's grad to 0.0 (``backward()`` accumulates into it)."""
        for p in self.params:
            p.grad = 0.0

    def step(self) -> None:
        raise NotImplementedError

    def state_dict(self) -> State:
        """Hyperparameters and buffers as plain numbers and lists (JSON-serialisable)."""
        state: State = {name: getattr(self, name) for name in self.hyperparameters + self.counters}
        for name in self.buffers:
            buf = getattr(self, name)
            state[name] = None if buf is None else list(buf)
        return state

    def load_state_dict(self, state: State) -> None:
        """Restore what ``state_dict()`` saved, for an optimizer over as many parameters."""
        expected = set(self.hyperparameters + self.counters + self.buffers)
        if not isinstance(state, dict) or set(state) != expected:
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"{type(self).__name__} state must have the keys {sorted(expected)}, got {got}")
        for name in self.buffers:
            buf = state[name]
            if buf is not None and len(buf) != len(self.params):
                raise ValueError(
                    f"{type(self).__name__} state {name!r} has {len(buf)} entries for {len(self.params)} parameters"
                )
        for name in self.hyperparameters + self.counters:
            value = state[name]
            setattr(self, name, tuple(value) if isinstance(value, list) else value)
        for name in self.buffers:
            setattr(self, name, None if state[name] is None else [float(x) for x in state[name]])

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
        super().__init__(params, lr)
        _check_at_least("momentum value", momentum, 0.0)
        _check_at_least("weight_decay value", weight_decay, 0.0)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        self.momentum = momentum
        self.dampening = dampening
        self.weight_decay = weight_decay
        self.nesterov = nesterov
        self.maximize = maximize
        self.momentum_buffer: Optional[List[float]] = None  # made on the first step, as torch does

    def step(self) -> None:
        lr, momentum, dampening, weight_decay = self.lr, self.momentum, self.dampening, self.weight_decay
        first = self.momentum_buffer is None
        if momentum != 0 and first:
            self.momentum_buffer = [0.0] * len(self.params)
        bufs = self.momentum_buffer
        for i, p in enumerate(self.params):
            g = -p.grad if self.maximize else p.grad
            if weight_decay != 0:
                g = g + weight_decay * p.data
            if momentum != 0:
                buf = g if first else bufs[i] * momentum + (1 - dampening) * g
                bufs[i] = buf
                g = g + momentum * buf if self.nesterov else buf
            p.data = p.data + -lr * g


class Adam(Optimizer):
    """Adam, as ``torch.optim.Adam`` (and AdamW with ``decoupled_weight_decay=True``)::

        t += 1
        g = grad + weight_decay * p                   (Adam's L2 penalty), or
        p = p * (1 - lr * weight_decay)               (AdamW's decoupled decay)
        m = m + (1 - beta1) * (g - m)                 (torch's lerp)
        v = v * beta2 + (1 - beta2) * g * g
        denom = sqrt(v) / sqrt(1 - beta2**t) + eps    (v_max = max(v_max, v) instead of v with amsgrad)
        p = p + (-lr / (1 - beta1**t)) * m / denom
    """

    hyperparameters = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "decoupled_weight_decay")
    counters = ("step_count",)
    buffers = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

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
        super().__init__(params, lr)
        _check_at_least("epsilon value", eps, 0.0)
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        for i, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
        _check_at_least("weight_decay value", weight_decay, 0.0)
        self.betas = tuple(betas)
        self.eps = eps
        self.weight_decay = weight_decay
        self.amsgrad = amsgrad
        self.maximize = maximize
        self.decoupled_weight_decay = decoupled_weight_decay
        self.step_count = 0
        n = len(self.params)
        self.exp_avg: List[float] = [0.0] * n
        self.exp_avg_sq: List[float] = [0.0] * n
        self.max_exp_avg_sq: Optional[List[float]] = [0.0] * n if amsgrad else None

    def step(self) -> None:
        lr, (beta1, beta2), eps, weight_decay = self.lr, self.betas, self.eps, self.weight_decay
        self.step_count += 1
        # Per step, not per parameter: torch computes these in Python floats too.
        t = float(self.step_count)
        bias_correction1 = 1 - beta1**t
        bias_correction2 = 1 - beta2**t
        step_size = lr / bias_correction1
        bias_correction2_sqrt = bias_correction2**0.5
        m, v, v_max = self.exp_avg, self.exp_avg_sq, self.max_exp_avg_sq
        for i, p in enumerate(self.params):
            g = -p.grad if self.maximize else p.grad
            if weight_decay != 0:
                if self.decoupled_weight_decay:
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


def _check_at_least(what: str, value: object, low: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number, not {type(value).__name__!r}")
    if not value >= low:
        raise ValueError(f"Invalid {what}: {value}")
