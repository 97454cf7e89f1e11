"""Karpathy's small neural-net library, unchanged in behaviour: same classes, same reprs, and the
same draws from Python's ``random`` in the same order, so ``random.seed(1337)`` gives his demo's
initial weights. It builds on whichever engine ``micrograd.engine`` made active.

Additions, all opt-in (the defaults are Karpathy's, bit for bit):
- ``activation=`` per neuron, layer or MLP: ``'relu'``, ``'tanh'``, ``'sigmoid'``, ``'linear'``;
- ``init=`` for the weights: ``'uniform'`` (Karpathy's U(-1, 1)), ``'he'``, ``'lecun'``, or a
  function of the fan-in returning one weight;
- ``engine=`` to build a model on a given engine (``'python'``, ``'cython'`` or a Value class);
- ``state_dict()`` / ``load_state_dict()``: the parameters as plain floats, for JSON. Loading
  takes any real number (NumPy's float32 as its float64) and refuses NaN and inf: a state holding
  them comes from a diverged run, and strict JSON cannot write them.

Stricter than Karpathy's, where his accepted a mistake silently: sizes must be positive ints
(not bools), ``MLP(2, [])`` is an error, every activation name is checked even if no layer uses
it, and an input of the wrong length raises ValueError where ``zip`` truncated it. A hidden
layer of one neuron feeds the next layer (his raised TypeError).
"""
from __future__ import annotations

import math
import operator
import random
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from micrograd._ops import is_number
from micrograd.engine import Value, is_value
from micrograd.optim import zero_grads

ACTIVATIONS = ("relu", "tanh", "sigmoid", "linear")
_REPR_NAMES = {"relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid", "linear": "Linear"}

Init = Union[str, Callable[[int], float]]
StateDict = Dict[str, Union[float, List[float]]]


# -- weight initialisation: each draws one weight from the global ``random`` for a given fan-in --
def _uniform(nin: int) -> float:
    return random.uniform(-1, 1)  # Karpathy's: the same call, so the same stream of numbers


def _he(nin: int) -> float:
    bound = math.sqrt(6.0 / nin)  # variance 2/nin: keeps the scale of signals through ReLU layers
    return random.uniform(-bound, bound)


def _lecun(nin: int) -> float:
    bound = math.sqrt(3.0 / nin)  # variance 1/nin: suits tanh and sigmoid
    return random.uniform(-bound, bound)


INITS: Dict[str, Callable[[int], float]] = {"uniform": _uniform, "he": _he, "lecun": _lecun}


def _init_function(init: Optional[Init]) -> Callable[[int], float]:
    if init is None:
        return _uniform
    if isinstance(init, str):
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; expected one of {', '.join(map(repr, INITS))} or a function")
        return INITS[init]
    if callable(init):
        return init
    raise TypeError(f"init must be a name or a function of the fan-in, not {type(init).__name__!r}")


def _check_activation(activation: object) -> str:
    if not isinstance(activation, str):
        raise TypeError(f"activation must be a str, not {type(activation).__name__!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; expected one of {', '.join(map(repr, ACTIVATIONS))}")
    return activation


def _check_count(what: str, n: object) -> int:
    """A positive int (or an integer type such as numpy's), for input and layer sizes. A bool is
    refused although it is an int: ``MLP(True, [1])`` is a mistake, not a model of 1 input."""
    if isinstance(n, bool) or not hasattr(type(n), "__index__"):
        raise TypeError(f"{what} must be an int, not {type(n).__name__!r}")
    n = operator.index(n)
    if n < 1:
        raise ValueError(f"{what} must be at least 1, got {n}")
    return n


def _check_sizes(nouts: object) -> List[int]:
    if isinstance(nouts, (str, bytes)) or not isinstance(nouts, (list, tuple)):
        raise TypeError(f"nouts must be a list of layer sizes, not {type(nouts).__name__!r}")
    if not nouts:
        raise ValueError("nouts must list at least one layer size, e.g. MLP(2, [16, 16, 1])")
    return [_check_count(f"layer size nouts[{i}]", n) for i, n in enumerate(nouts)]


def _inputs(x: Any, n: int, who: "Neuron") -> Sequence[Any]:
    """``x`` as a sequence of exactly ``n`` inputs. Karpathy's ``zip`` silently dropped the
    extra inputs (or weights) of a wrong-sized input; here that is an error."""
    if not hasattr(x, "__len__"):
        if not hasattr(x, "__iter__"):
            raise TypeError(f"{who!r} takes a sequence of {n} inputs, not {type(x).__name__!r}")
        x = list(x)
    if len(x) != n:
        raise ValueError(f"{who!r} takes {n} inputs, got {len(x)}")
    return x


def _value_class(engine: object) -> type:
    """The Value class to build parameters with: the module's ``Value`` (the active engine)
    unless ``engine`` names a loaded engine or is a Value class."""
    if engine is None:
        return Value
    from micrograd.engine import ENGINES

    if isinstance(engine, str):
        if engine not in ENGINES:
            raise ValueError(f"engine {engine!r} is not loaded here; loaded: {', '.join(map(repr, ENGINES))}")
        return ENGINES[engine]
    if engine in ENGINES.values():
        return engine  # type: ignore[return-value]
    raise TypeError(f"engine must be an engine name or a micrograd Value class, not {engine!r}")


class Module:
    def zero_grad(self) -> None:
        # Karpathy's `for p in self.parameters(): p.grad = 0`; one C loop on compiled Values
        zero_grads(self.parameters())

    def parameters(self) -> List[Value]:
        return []

    # -- saving and loading -------------------------------------------------------------------
    def _named_state(self) -> Iterator[Tuple[str, Union[Value, List[Value]]]]:
        """The (name, Value or list of Values) pairs ``state_dict()`` saves. A module of your own
        that defines only ``parameters()`` is saved as one list named 'parameters'."""
        yield "parameters", self.parameters()

    def state_dict(self) -> StateDict:
        """The parameters' values as plain floats (lists of floats for weight vectors), under
        stable dotted keys such as ``'layers.0.neurons.3.w'``; ``json.dumps`` takes it as is."""
        return {name: ([p.data for p in v] if isinstance(v, list) else v.data) for name, v in self._named_state()}

    def load_state_dict(self, state: StateDict) -> None:
        """Set every parameter from ``state``, as made by ``state_dict()`` of a module of the same
        shape (on either engine, or read back from JSON). Nothing is changed unless all of
        ``state`` fits: the same keys, the same list lengths, numbers only."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict as state_dict() returns, not {type(state).__name__!r}")
        own = dict(self._named_state())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if missing or unexpected:
            raise KeyError(
                f"state does not fit {type(self).__name__}: missing keys {missing}, unexpected keys {unexpected}"
            )
        updates = []
        for name, target in own.items():
            if isinstance(target, list):
                values = state[name]
                if not isinstance(values, (list, tuple)):
                    raise TypeError(f"state[{name!r}] must be a list of {len(target)} numbers, not {type(values).__name__!r}")
                if len(values) != len(target):
                    raise ValueError(f"state[{name!r}] has {len(values)} numbers; this module has {len(target)}")
                updates += [(p, _number(x, name)) for p, x in zip(target, values)]
            else:
                updates.append((target, _number(state[name], name)))
        for p, x in updates:
            p.data = x


def _number(x: object, name: str) -> float:
    """``x`` as a parameter value: any real number (int, float, NumPy's float32 or int64 alike,
    Fraction, Decimal), converted as ``Value(x)`` converts it, and finite. NaN and inf are
    refused: such a weight makes every output NaN or inf, so a state holding one comes from a
    run that diverged, and JSON cannot even write it (``json.dumps`` emits non-standard NaN)."""
    if isinstance(x, (bool, str, bytes)) or not is_number(x):
        raise TypeError(f"state[{name!r}] must hold numbers, not {type(x).__name__!r}")
    try:
        value = float(x)  # type: ignore[arg-type]
    except (OverflowError, ValueError, TypeError) as exc:  # e.g. 10**400: too large for a float
        raise type(exc)(f"state[{name!r}] holds {_short(x)}: {exc}") from None
    if not math.isfinite(value):
        raise ValueError(f"state[{name!r}] holds {value}; parameters must be finite (a diverged run's state?)")
    return value


def _short(x: object) -> str:
    text = repr(x)
    return text if len(text) <= 40 else text[:37] + "..."


class Neuron(Module):
    def __init__(
        self,
        nin: int,
        nonlin: bool = True,
        *,
        activation: Optional[str] = None,
        init: Optional[Init] = None,
        engine: Any = None,
    ) -> None:
        """``nin`` weights drawn by ``init`` (default: Karpathy's ``random.uniform(-1, 1)``), a
        bias of 0, and an activation: ``activation`` if given, else ReLU (``nonlin=True``) or
        linear (``nonlin=False``), as in Karpathy's."""
        if activation is None:
            activation = "relu" if nonlin else "linear"
        elif not nonlin and activation != "linear":
            raise ValueError(f"nonlin=False means a linear neuron; it contradicts activation={activation!r}")
        self.activation = _check_activation(activation)
        nin = _check_count("nin", nin)
        draw = _init_function(init)
        value = _value_class(engine)
        self.w = [value(draw(nin)) for _ in range(nin)]
        self.b = value(0)

    @property
    def nonlin(self) -> bool:
        """Karpathy's flag: True unless the neuron is linear."""
        return self.activation != "linear"

    @nonlin.setter
    def nonlin(self, on: bool) -> None:
        self.activation = "relu" if on else "linear"

    def __call__(self, x: Sequence[Any]) -> Value:
        if type(x) is not list or len(x) != len(self.w):  # ~40 ns of a ~1.4 us call on lists
            x = _inputs(x, len(self.w), self)
        act = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)
        if self.activation == "linear":
            return act
        return getattr(act, self.activation)()  # the names are Value's methods: relu, tanh, sigmoid

    def parameters(self) -> List[Value]:
        return self.w + [self.b]

    def _named_state(self) -> Iterator[Tuple[str, Union[Value, List[Value]]]]:
        yield "w", self.w
        yield "b", self.b

    def __repr__(self) -> str:
        return f"{_REPR_NAMES[self.activation]}Neuron({len(self.w)})"


class Layer(Module):
    def __init__(self, nin: int, nout: int, **kwargs: Any) -> None:
        nout = _check_count("nout", nout)
        self.neurons = [Neuron(nin, **kwargs) for _ in range(nout)]

    def __call__(self, x: Sequence[Any]) -> Union[Value, List[Value]]:
        out = [n(x) for n in self.neurons]
        return out[0] if len(out) == 1 else out

    def parameters(self) -> List[Value]:
        return [p for n in self.neurons for p in n.parameters()]

    def _named_state(self) -> Iterator[Tuple[str, Union[Value, List[Value]]]]:
        for i, n in enumerate(self.neurons):
            for name, v in n._named_state():
                yield f"neurons.{i}.{name}", v

    def __repr__(self) -> str:
        return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"


class MLP(Module):
    def __init__(
        self,
        nin: int,
        nouts: List[int],
        *,
        activation: Union[str, Sequence[str]] = "relu",
        output_activation: Optional[str] = None,
        init: Optional[Init] = None,
        engine: Any = None,
    ) -> None:
        """Layers of sizes ``nouts`` on ``nin`` inputs. ``activation`` is the hidden layers'
        activation (ReLU, as in Karpathy's) and ``output_activation`` the last layer's (linear
        by default); or pass ``activation`` as a list with one name per layer, last included."""
        sz = [_check_count("nin", nin)] + _check_sizes(nouts)
        acts = self._layer_activations(activation, output_activation, len(sz) - 1)
        self.layers = [
            Layer(sz[i], sz[i + 1], activation=acts[i], init=init, engine=engine) for i in range(len(nouts))
        ]

    @staticmethod
    def _layer_activations(activation: Union[str, Sequence[str]], output_activation: Optional[str], n: int) -> List[str]:
        if isinstance(activation, str):
            # checked even when no hidden layer uses it: MLP(2, [1], activation='softmax') is a mistake
            _check_activation(activation)
            last = "linear" if output_activation is None else _check_activation(output_activation)
            return [activation] * (n - 1) + [last]
        if output_activation is not None:
            raise TypeError("give output_activation only with a single hidden activation; a list names every layer")
        if not isinstance(activation, (list, tuple)):
            raise TypeError(f"activation must be a name or a list of names, not {type(activation).__name__!r}")
        acts = [_check_activation(a) for a in activation]
        if len(acts) != n:
            raise ValueError(f"activation lists {len(acts)} names for {n} layers; give one per layer, the last included")
        return acts

    def __call__(self, x: Sequence[Any]) -> Union[Value, List[Value]]:
        for layer in self.layers:
            if type(x) is not list and is_value(x):
                x = [x]  # a hidden layer of one neuron returns a Value; the next layer takes a list
            x = layer(x)
        return x

    def parameters(self) -> List[Value]:
        return [p for layer in self.layers for p in layer.parameters()]

    def _named_state(self) -> Iterator[Tuple[str, Union[Value, List[Value]]]]:
        for i, layer in enumerate(self.layers):
            for name, v in layer._named_state():
                yield f"layers.{i}.{name}", v

    def __repr__(self) -> str:
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"

    # -- to and from PyTorch (optional; micrograd.torch_bridge does the work) ----------------------
    def to_torch(self) -> Any:
        """This MLP as a float64 ``torch.nn.Sequential`` (Linear + activation per layer) with the
        same weights; outputs agree to float64 rounding. Needs PyTorch."""
        from micrograd.torch_bridge import to_torch

        return to_torch(self)

    @classmethod
    def from_torch(cls, seq: Any, *, engine: Any = None) -> "MLP":
        """An MLP with the weights of ``seq``, a ``torch.nn.Sequential`` of Linear layers each
        followed by at most one ReLU, Tanh or Sigmoid (as ``to_torch()`` makes). Needs PyTorch."""
        from micrograd.torch_bridge import from_torch

        return from_torch(seq, engine=engine, cls=cls)
