"""Karpathy's neuron loop in C, for micrograd.nn on compiled-engine parameters.

``Neuron.__call__`` is ``sum((wi*xi for wi, xi in zip(self.w, x)), self.b)`` and an activation.
``sum`` starts from the bias and, for each pair in turn, makes the product and adds it:
``b + w0*x0``, then ``+ w1*x1``, ... so the nodes are made in the order product, sum, product,
sum. ``neuron()`` below makes the same nodes in the same order with the same op codes and the
same kernels (micrograd/_kernels.h), in a C loop instead of the interpreter's generator, zip
and sum: the graph (draw_dot, explain_backward, _prev order) and the bits are the same.

Only the common case runs in C: weights, products and sums that are compiled-engine Values,
and inputs that are such Values or Python floats (a float becomes a leaf as ``wi * 2.0``
makes it). Any other operand (an int, NumPy's numbers, another engine's Value, something
that is no number) goes through Python's ``*`` or ``+`` for that one step, which is exactly what
the generator and ``sum`` would have done with it, errors included. A neuron whose weights
or bias are not all compiled-engine Values (the pure engine, a mixed model), or whose
activation is not a str, is declined (NotImplemented) before any node is made, and nn runs
Karpathy's loop.
"""
from cpython.ref cimport PyObject, Py_INCREF
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE

from micrograd._engine cimport Value, _node
from micrograd._kernels cimport *

# nn's activations that are one op of the engine, each the Value method of that name ('linear'
# is no op; a name nn does not know takes the method call in _activate).
cdef dict _ACTIVATION_CODES = {"relu": MG_RELU, "tanh": MG_TANH, "sigmoid": MG_SIGMOID}


# -- making nodes: _engine.pxd's _node, as the engine's own ops make them ------------------------
cdef inline object _times(Value w, object x):
    """``w * x``: a mul node in C for a Value or float x, else Python's ``*`` (Value.__mul__
    wraps other numbers; other objects get their own __rmul__ or the TypeError)."""
    cdef Value leaf
    if type(x) is Value:
        return _node(mg_mul(w._data, (<Value>x)._data), MG_MUL, w, <Value>x, 0.0)
    if type(x) is float:
        leaf = Value.__new__(Value)  # the leaf Value.__mul__ makes of a float operand
        leaf._data = <double>x
        return _node(mg_mul(w._data, leaf._data), MG_MUL, w, leaf, 0.0)
    return w * x


cdef inline object _plus(object acc, object term):
    """``acc + term``, as sum() adds: an add node in C for two Values, else Python's ``+``."""
    if type(acc) is Value and type(term) is Value:
        return _node(mg_add((<Value>acc)._data, (<Value>term)._data), MG_ADD, <Value>acc, <Value>term, 0.0)
    return acc + term


cdef object _activate(object act, str activation):
    """``act`` through Neuron's activation: itself for 'linear', else ``act.<activation>()``."""
    cdef double r
    code = _ACTIVATION_CODES.get(activation)
    if code is not None and type(act) is Value:
        if mg_forward(<int>code, (<Value>act)._data, 0.0, &r) == MG_OK:
            return _node(r, <int>code, <Value>act, None, 0.0)
    if activation == "linear":
        return act
    return getattr(act, activation)()  # Value's method (or its error), as Neuron.__call__ calls it


cdef bint _compiled_neuron(object w, object b, object activation):
    """Whether the C loop takes this neuron: a list of compiled-engine weights, such a bias,
    and an activation name."""
    cdef Py_ssize_t i
    if type(w) is not list or type(b) is not Value or type(activation) is not str:
        return False
    for i in range(PyList_GET_SIZE(w)):
        if type(<object>PyList_GET_ITEM(w, i)) is not Value:
            return False
    return True


cdef object _neuron(list w, object b, object x, str activation):
    """The loop of Neuron.__call__ on weights and bias _compiled_neuron accepted, x a list or
    tuple. Each pair is read afresh (an owned reference) and the lengths checked each time,
    as zip does, so that a Python ``*``/``+`` that changed a list cannot leave a dangling pointer."""
    cdef Py_ssize_t i = 0
    cdef bint is_list = type(x) is list
    cdef object wi, xi
    act = b
    while True:
        if i >= PyList_GET_SIZE(w):
            break
        if is_list:
            if i >= PyList_GET_SIZE(x):
                break
            xi = <object>PyList_GET_ITEM(x, i)
        else:
            if i >= PyTuple_GET_SIZE(x):
                break
            xi = <object>PyTuple_GET_ITEM(x, i)
        wi = <object>PyList_GET_ITEM(w, i)
        if type(wi) is Value:  # always, unless a Python op above put something else in w
            term = _times(<Value>wi, xi)
        else:
            term = wi * xi
        act = _plus(act, term)
        i += 1
    return _activate(act, activation)


def neuron(w, b, x, activation):
    """``sum((wi*xi for wi, xi in zip(w, x)), b)`` through ``activation``, in C; or
    NotImplemented, having made nothing, when the C loop does not take these operands."""
    if (type(x) is not list and type(x) is not tuple) or not _compiled_neuron(w, b, activation):
        return NotImplemented
    return _neuron(<list>w, b, x, <str>activation)


def layer(neurons, x, neuron_type):
    """``[n(x) for n in neurons]``, each neuron of exactly ``neuron_type`` (nn.Neuron) taking x
    directly when the C loop takes it and x is a list of its length (what Neuron.__call__
    would pass on unchanged); any other neuron or input goes through ``n(x)``, Neuron.__call__'s
    checks and errors included. NotImplemented, having made nothing, if neurons is no list."""
    cdef Py_ssize_t i
    cdef list out
    if type(neurons) is not list:
        return NotImplemented
    out = []
    i = 0
    while i < PyList_GET_SIZE(neurons):  # re-read: n(x) may run Python code
        nrn = <object>PyList_GET_ITEM(neurons, i)
        result = NotImplemented
        if type(nrn) is neuron_type and type(x) is list:
            w = nrn.w
            b = nrn.b
            activation = nrn.activation
            if (type(w) is list and PyList_GET_SIZE(w) == PyList_GET_SIZE(x)
                    and _compiled_neuron(w, b, activation)):
                result = _neuron(<list>w, b, x, <str>activation)
        if result is NotImplemented:
            result = nrn(x)
        out.append(result)
        i += 1
    return out
