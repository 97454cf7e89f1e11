# The node layout of the compiled engine, shared with other compiled modules (e.g. a tape).
from cpython.ref cimport PyObject, Py_INCREF
cimport cython

# Kinds of node built by hand (not ops): must equal micrograd._ops.CUSTOM and LOCAL_GRADS
# (checked when _engine loads). The op codes are micrograd/_kernels.h's MG_* (_kernels.pxd).
# LINK: a node the engine adds, never shown, to chain the children of a node built by hand
# with more than two (see _engine.pyx, _links).
cdef enum:
    CUSTOM = 64
    LOCAL_GRADS = 65
    LINK = 66


@cython.final
cdef class Value:
    # In this order so that what a graph walk reads (children, mark, code) is close together.
    cdef double _data
    cdef double _grad
    cdef PyObject *_a           # the children, owned references (NULL when absent; see _links)
    cdef PyObject *_b
    cdef unsigned long long _mark  # the epoch of the last graph walk that visited it
    cdef int code               # an op code (MG_*), or CUSTOM / LOCAL_GRADS
    cdef double _aux            # the exponent of a powc node
    cdef object _extra          # None, the label (a str), or a _HandBuilt: label and hand-built state


# Making an interior node, for every compiled module that makes them (the engine's ops, nn's C
# loop): Value.__new__ skips __init__ and its checks; a and b are the children (b may be None).
cdef inline Value _node(double data, int code, Value a, Value b, double aux):
    cdef Value out = Value.__new__(Value)
    out._data = data
    out.code = code
    out._aux = aux
    Py_INCREF(a)
    out._a = <PyObject *>a
    if b is not None:
        Py_INCREF(b)
        out._b = <PyObject *>b
    return out
