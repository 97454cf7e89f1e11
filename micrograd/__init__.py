"""micrograd, made fast: Karpathy's scalar autograd engine with a compiled (Cython) engine and
a pure-Python reference engine behind the same API. ``BACKEND`` names the active engine."""
import importlib

from micrograd.engine import BACKEND, ENGINES, Value
from micrograd.nn import MLP, Layer, Module, Neuron

__version__ = "0.1.0"

# Tools on top of the engine, imported on first use so that `import micrograd` stays light.
_LAZY = {
    "Tape": "micrograd.tape",
    "draw_dot": "micrograd.viz",
    "to_dot": "micrograd.viz",
    "tree_str": "micrograd.viz",
    "print_tree": "micrograd.viz",
    "graph_stats": "micrograd.graph",
    "gradcheck": "micrograd.gradient_check",
    "explain_backward": "micrograd.explain",
    "BackwardStepper": "micrograd.explain",
}


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'micrograd' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_LAZY))


__all__ = ["Value", "Module", "Neuron", "Layer", "MLP", "BACKEND", "ENGINES", "__version__", *_LAZY]
