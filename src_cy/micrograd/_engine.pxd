# The node layout of the compiled engine, shared with other compiled modules (e.g. a tape).
from cpython.ref cimport PyObject
cimport cython

# Op codes: must equal micrograd._ops.OP_CODES (a test compares them).
cdef enum:
    LEAF = 0
    ADD = 1
    MUL = 2
    POWC = 3
    POW = 4
    RELU = 5
    TANH = 6
    EXP = 7
    LOG = 8
    SIGMOID = 9


@cython.final
cdef class Value:
    cdef double _data
    cdef double _grad
    cdef double _aux            # the exponent of a powc node
    cdef PyObject *_a           # children, owned references (NULL when absent)
    cdef PyObject *_b
    cdef unsigned long long _mark  # the epoch of the last backward() that visited it
    cdef int _code
    cdef str _label             # None means ''
