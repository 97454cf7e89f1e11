"""A way out to PyTorch: an ``MLP`` as a ``torch.nn.Sequential`` and back.

    seq = model.to_torch()            # Linear(+activation) per Layer, float64, the same weights
    model = MLP.from_torch(seq)       # back: the same weights, bit for bit

Each micrograd ``Layer`` becomes ``torch.nn.Linear(nin, nout, dtype=torch.float64)`` (row ``i`` of
its weight is neuron ``i``'s ``w``, its bias the neurons' ``b``) followed by ``ReLU()``, ``Tanh()``
or ``Sigmoid()``, or by nothing for a linear layer. Outputs and gradients agree to float64
rounding, not bit for bit: a neuron here adds ``b + w0*x0 + w1*x1 + ...`` in that order, while
torch's matrix product may add in another order. Weights make the round trip exactly.

One difference of shape: a micrograd MLP whose last layer has one neuron returns a single
Value, the Sequential a tensor of shape ``(batch, 1)``.

PyTorch is optional: it is imported here, on first use, with a message saying how to install it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Optional, Tuple

from micrograd._cli import TORCH_HINT

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from micrograd.nn import MLP

# micrograd activation name -> torch.nn module class name; 'linear' has no module
ACTIVATION_MODULES = {"relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid"}


def import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise ImportError(f"converting to or from PyTorch needs PyTorch: {TORCH_HINT}") from exc
    return torch


# -- micrograd -> torch ------------------------------------------------------------------------------
def _layer_activation(layer: Any, index: int) -> str:
    """The one activation every neuron of ``layer`` has (a Linear layer applies one to all)."""
    activations = {n.activation for n in layer.neurons}
    if len(activations) != 1:
        raise ValueError(
            f"layer {index} mixes activations {sorted(activations)}: torch.nn.Linear + one activation "
            "module needs the same activation for every neuron of a layer"
        )
    return activations.pop()


def to_torch(mlp: "MLP") -> "torch.nn.Sequential":
    """``mlp`` as a float64 ``torch.nn.Sequential`` with the same weights (see the module doc)."""
    torch = import_torch()
    if not mlp.layers:
        raise ValueError("an MLP without layers has nothing to convert")
    modules: List[Any] = []
    nin = len(mlp.layers[0].neurons[0].w) if mlp.layers[0].neurons else 0
    for index, layer in enumerate(mlp.layers):
        if not layer.neurons:
            raise ValueError(f"layer {index} has no neurons")
        widths = {len(n.w) for n in layer.neurons}
        if widths != {nin}:
            raise ValueError(f"layer {index} has neurons with {sorted(widths)} inputs; the layer before it gives {nin}")
        activation = _layer_activation(layer, index)
        linear = torch.nn.Linear(nin, len(layer.neurons), dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(torch.tensor([[w.data for w in n.w] for n in layer.neurons], dtype=torch.float64))
            linear.bias.copy_(torch.tensor([n.b.data for n in layer.neurons], dtype=torch.float64))
        modules.append(linear)
        if activation != "linear":
            modules.append(getattr(torch.nn, ACTIVATION_MODULES[activation])())
        nin = len(layer.neurons)
    return torch.nn.Sequential(*modules)


# -- torch -> micrograd ------------------------------------------------------------------------------
def _activation_name(torch: Any, module: Any) -> Optional[str]:
    """'relu', 'tanh' or 'sigmoid' for exactly those torch modules (a subclass may compute
    something else), else None."""
    for name, class_name in ACTIVATION_MODULES.items():
        if type(module) is getattr(torch.nn, class_name):
            return name
    return None


def _read_layers(seq: Any) -> List[Tuple[Any, str]]:
    """(Linear, activation name) per layer, checking that ``seq`` is Linear [activation] ...."""
    torch = import_torch()
    if not isinstance(seq, torch.nn.Sequential):
        raise TypeError(f"from_torch takes a torch.nn.Sequential, not {type(seq).__name__!r}")
    layers: List[Tuple[Any, str]] = []
    for index, module in enumerate(seq):
        if isinstance(module, torch.nn.Linear):
            if module.bias is None:
                raise ValueError(f"module {index} is a Linear without bias; every micrograd neuron has one")
            if layers and layers[-1][0].out_features != module.in_features:
                raise ValueError(
                    f"module {index} takes {module.in_features} inputs but the layer before it gives {layers[-1][0].out_features}"
                )
            layers.append((module, "linear"))
            continue
        activation = _activation_name(torch, module)
        if activation is None:
            raise ValueError(
                f"module {index} is {type(module).__name__}; micrograd's MLP has only Linear layers, "
                f"each followed by at most one of {', '.join(ACTIVATION_MODULES.values())}"
            )
        if not layers or layers[-1][1] != "linear":
            raise ValueError(f"module {index} ({type(module).__name__}) does not follow a Linear layer")
        layers[-1] = (layers[-1][0], activation)
    if not layers:
        raise ValueError("the Sequential holds no Linear layer")
    return layers


def _no_draw(nin: int) -> float:
    return 0.0  # every weight is set from torch: leave the user's `random` stream alone


def from_torch(seq: "torch.nn.Sequential", *, engine: Any = None, cls: Optional[type] = None) -> "MLP":
    """An MLP (of class ``cls``, default ``MLP``, on ``engine``) with ``seq``'s weights."""
    if cls is None:
        from micrograd.nn import MLP as cls
    layers = _read_layers(seq)
    nin = layers[0][0].in_features
    nouts = [linear.out_features for linear, _ in layers]
    model = cls(nin, nouts, activation=[a for _, a in layers], init=_no_draw, engine=engine)
    for layer, (linear, _) in zip(model.layers, layers):
        weights = linear.weight.detach().to("cpu").double().tolist()
        biases = linear.bias.detach().to("cpu").double().tolist()
        for neuron, row, b in zip(layer.neurons, weights, biases):
            for w, x in zip(neuron.w, row):
                w.data = x
            neuron.b.data = b
    return model
