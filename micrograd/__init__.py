"""micrograd, made fast: Karpathy's scalar autograd engine with a compiled (Cython) engine and
a pure-Python reference engine behind the same API. ``BACKEND`` names the active engine."""
from micrograd.engine import BACKEND, ENGINES, Value
from micrograd.nn import MLP, Layer, Module, Neuron
from micrograd.tape import Tape

__version__ = "0.1.0"

__all__ = ["Value", "Module", "Neuron", "Layer", "MLP", "Tape", "BACKEND", "ENGINES", "__version__"]
