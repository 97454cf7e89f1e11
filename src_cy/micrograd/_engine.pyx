# cython: language_level=3
"""The compiled engine: the same ``Value`` as ``micrograd/pure.py``, with the graph held in C.

Each node is a C struct with its data, grad, up to two child pointers, an op code, an
auxiliary double (the exponent of ``powc``) and a visit mark. ``backward()`` is an iterative
depth-first search followed by a reverse loop that switches on the op code: no Python call,
closure, set or dict per node. The formulas, and the order in which gradients accumulate,
are those of the pure engine (see ``micrograd/_ops.py``), so both give identical bits.

Memory: nodes are not tracked by the cyclic garbage collector (a node only points at nodes
made before it, and labels must be str, so no cycle can form), which keeps a node at 80 bytes
and spares the collector from scanning 10^6-node graphs. Freeing a long chain would recurse
once per node in C; ``__dealloc__`` instead queues children and frees them in a loop.
"""
cimport cython
from cpython.ref cimport PyObject, Py_INCREF
from micrograd._engine cimport *
from libc.math cimport NAN, exp, floor, isfinite, isinf, log, pow, tanh
from libc.stdlib cimport free, malloc, realloc

from micrograd import _ops

cdef extern from "Python.h":
    Py_ssize_t Py_REFCNT(PyObject *o)
    void _decref "Py_DECREF"(PyObject *o)  # on a raw pointer, where Cython's takes an object

# Op codes (LEAF, ADD, ...) are declared in _engine.pxd; they must equal micrograd._ops.OP_CODES.

OP_CODES = {"leaf": LEAF, "add": ADD, "mul": MUL, "powc": POWC, "pow": POW, "relu": RELU,
            "tanh": TANH, "exp": EXP, "log": LOG, "sigmoid": SIGMOID}

# Each backward() pass marks the nodes it visits with a new epoch: no visited-set needed.
cdef unsigned long long _epoch = 0


@cython.no_gc
@cython.freelist(1024)
cdef class Value:
    """stores a single scalar value and its gradient"""
    # C fields: declared in _engine.pxd, so that other compiled modules can cimport them.

    def __init__(self, data, _children=(), _op="", label=""):
        self._data = _as_double(data)
        cdef tuple kids = ()
        if _children:
            kids = _ops.check_children(_children, Value)
        if _op or kids:
            self._code, self._aux = _ops.parse_symbol(_op, len(kids))
        _release(self._a)  # only when __init__ is called again on a live Value
        _release(self._b)
        self._a = self._b = NULL
        if len(kids) > 0:
            Py_INCREF(kids[0])
            self._a = <PyObject *>kids[0]
        if len(kids) > 1:
            Py_INCREF(kids[1])
            self._b = <PyObject *>kids[1]
        self._label = _ops.check_label(label) or None

    def __dealloc__(self):
        _release(self._a)
        _release(self._b)
        self._a = NULL
        self._b = NULL
        _drain_released()

    # -- attributes ----------------------------------------------------------------------------
    @property
    def data(self):
        return self._data

    @data.setter
    def data(self, value):
        self._data = _as_double(value)

    @property
    def grad(self):
        return self._grad

    @grad.setter
    def grad(self, value):
        self._grad = _as_grad(value)

    @property
    def label(self):
        return "" if self._label is None else self._label

    @label.setter
    def label(self, value):
        self._label = _ops.check_label(value)

    @property
    def _op(self):
        return _ops.symbol(self._code, self._aux)

    @property
    def _prev(self):
        if self._a == NULL:
            return ()
        if self._b == NULL:
            return (<Value>self._a,)
        return (<Value>self._a, <Value>self._b)

    # -- ops: forward here, backward in _backward_step below -----------------------------------
    def __add__(self, other):
        return _add(self, other)

    def __mul__(self, other):
        return _mul(self, other)

    def __pow__(self, other, modulo=None):
        cdef double k
        if modulo is not None:
            raise TypeError(_ops.POW_MODULO)
        if isinstance(other, Value):
            k = (<Value>other)._data
            return _node(_checked_pow(self._data, k), POW, self, <Value>other, 0.0)
        if not _ops.is_number(other):
            return NotImplemented
        k = _as_double(other)
        return _node(_checked_pow(self._data, k), POWC, self, None, k)

    def relu(self):
        cdef double x = self._data
        return _node(0.0 if x < 0 else x, RELU, self, None, 0.0)

    def tanh(self):
        return _node(tanh(self._data), TANH, self, None, 0.0)

    def exp(self):
        cdef double x = self._data
        cdef double r = exp(x)
        if isinf(r) and isfinite(x):
            raise _ops.exp_error(x)
        return _node(r, EXP, self, None, 0.0)

    def log(self):
        cdef double x = self._data
        if x <= 0.0:
            raise _ops.log_error(x)
        return _node(log(x), LOG, self, None, 0.0)

    def sigmoid(self):
        cdef double x = self._data, e, s
        if x >= 0.0:
            s = 1.0 / (1.0 + exp(-x))
        else:  # exp(-x) could overflow here; this form cannot
            e = exp(x)
            s = e / (1.0 + e)
        return _node(s, SIGMOID, self, None, 0.0)

    # -- backpropagation -----------------------------------------------------------------------
    def _backward(self):
        """Propagate this node's grad to its children (one chain-rule step, as in the lecture)."""
        _backward_step(<PyObject *>self)

    def backward(self):
        """Set this node's grad to 1 and accumulate d(self)/d(node) into every node below it."""
        cdef Py_ssize_t n, i
        cdef PyObject **topo = _topological_order(self, &n)
        if topo == NULL:
            raise MemoryError("Value.backward: out of memory sorting the graph")
        self._grad = 1.0
        for i in range(n - 1, -1, -1):
            _backward_step(topo[i])
        free(topo)

    # -- composite ops: built from the ones above, exactly as Karpathy's (and pure.py's) are ---
    def __neg__(self):
        return self * -1

    def __radd__(self, other):
        return _add(self, other)  # not `self + other`: that bounces between unrelated types

    # A number operand becomes a Python float before it is negated or inverted (as in pure.py):
    # -np.uint8(3) wraps around and np.int64(3) ** -1 raises, where float(...) is what the leaf holds.
    def __sub__(self, other):
        if isinstance(other, Value):
            return self + (-other)
        if not _ops.is_number(other):
            return NotImplemented
        return self + (-_ops.to_float(other))

    def __rsub__(self, other):
        if not _ops.is_number(other):
            return NotImplemented
        return _ops.to_float(other) + (-self)

    def __rmul__(self, other):
        return _mul(self, other)

    def __truediv__(self, other):
        if isinstance(other, Value):
            return self * other**-1
        if not _ops.is_number(other):
            return NotImplemented
        return self * _ops.to_float(other) ** -1  # Python's float pow: ZeroDivisionError for 0

    def __rtruediv__(self, other):
        if not _ops.is_number(other):
            return NotImplemented
        return _ops.to_float(other) * self**-1

    def __rpow__(self, other, modulo=None):
        if modulo is not None or not _ops.is_number(other):
            return NotImplemented  # pow(x, v, m): Python's own TypeError, as for any class
        return Value(other) ** self

    def __repr__(self):
        label = f", label={self._label!r}" if self._label else ""
        return f"Value(data={self._data!r}, grad={self._grad!r}{label})"

    def __reduce__(self):
        # A pickled Value is a leaf (data, grad, label), restored on whichever engine is active.
        from micrograd.engine import _restore_value
        return _restore_value, (self._data, self._grad, self.label)

    # A copy is a leaf too, as after pickling, but of this engine: copying stays in the process.
    def __copy__(self):
        cdef Value out = _leaf(self._data)
        out._grad = self._grad
        out._label = self._label
        return out

    def __deepcopy__(self, memo):
        return self.__copy__()


# ---------------------------------------------------------------------------------------------
# `v *= 'a'`: when both sides decline, the interpreter tries str's repeat only if Value's class
# has no sequence table at all. A class made by a `class` statement (pure.Value) always has one,
# empty; a compiled class has none, so it would say "can't multiply sequence by non-int of type
# 'Value'" where the pure engine says "unsupported operand type(s) for *=". Give the compiled
# class the same empty table (static storage: all NULL), so both raise the same TypeError.

cdef extern from "Python.h":
    ctypedef struct PySequenceMethods:
        pass
    ctypedef struct _TypeObject "PyTypeObject":
        PySequenceMethods *tp_as_sequence

cdef PySequenceMethods _no_sequence_methods
(<_TypeObject *>Value).tp_as_sequence = &_no_sequence_methods


# ---------------------------------------------------------------------------------------------
# Making nodes

cdef inline double _as_double(object x) except? -1.0:
    if type(x) is float:
        return <double>x
    if type(x) is int:  # Karpathy's zero_grad sets p.grad = 0; PyLong_AsDouble, as float() does
        return <double>x
    return _ops.to_float(x)


cdef inline double _as_grad(object x) except? -1.0:
    if type(x) is float or type(x) is int:
        return _as_double(x)
    return _ops.to_float(x, "grad")  # its TypeError names grad, not data


cdef inline Value _node(double data, int code, Value a, Value b, double aux):
    """A new interior node (Value.__new__ skips __init__ and its checks)."""
    cdef Value out = Value.__new__(Value)
    out._data = data
    out._code = code
    out._aux = aux
    Py_INCREF(a)
    out._a = <PyObject *>a
    if b is not None:
        Py_INCREF(b)
        out._b = <PyObject *>b
    return out


cdef inline Value _leaf(double data):
    cdef Value out = Value.__new__(Value)
    out._data = data
    return out


cdef inline Value _wrap(object other):
    """other as a Value (a new leaf for a number), or None where the op is not supported."""
    if type(other) is Value:
        return <Value>other
    if type(other) is float:
        return _leaf(<double>other)
    if _ops.is_number(other):
        return _leaf(_ops.to_float(other))
    return None


cdef object _add(Value self, object other):
    cdef Value o = _wrap(other)
    if o is None:
        return NotImplemented
    return _node(self._data + o._data, ADD, self, o, 0.0)


cdef object _mul(Value self, object other):
    cdef Value o = _wrap(other)
    if o is None:
        return NotImplemented
    return _node(self._data * o._data, MUL, self, o, 0.0)


cdef double _checked_pow(double x, double k) except? -1.0:
    """x ** k for the forward pass: pow() where it has a real finite answer, else the error
    Python's float raises (ZeroDivisionError, ValueError, OverflowError); as pure._checked_pow."""
    cdef double r
    # 0 ** -inf is inf, not an error, as in Python (and pure._checked_pow)
    if (x == 0.0 and k < 0.0 and isfinite(k)) or (x < 0.0 and isfinite(x) and isfinite(k) and k != floor(k)):
        raise _ops.pow_error(x, k)
    r = pow(x, k)
    if isinf(r) and isfinite(x) and isfinite(k):
        raise _ops.pow_error(x, k)
    return r


# ---------------------------------------------------------------------------------------------
# Backward: the chain rule of every op, in the order of micrograd/_ops.py's table

cdef inline double _exponent_slope(double x, double k, double out) noexcept:
    """d(x ** k)/dk = x**k * log(x); 0 where x == 0 and k >= 0 (as PyTorch), nan for x < 0."""
    if x > 0.0:
        return out * log(x)
    if x == 0.0 and k >= 0.0:
        return 0.0
    return NAN


cdef inline void _backward_step(PyObject *node) noexcept:
    # Nodes are reached through casts of borrowed pointers (the graph keeps them alive), which
    # Cython compiles to plain struct accesses: no reference counting in the hot loop. Hence
    # also `x._grad = x._grad + d` rather than `x._grad += d`, which would take a reference.
    cdef PyObject *a = (<Value>node)._a
    cdef PyObject *b = (<Value>node)._b
    cdef double g = (<Value>node)._grad, k, s
    cdef int code = (<Value>node)._code
    if code == LEAF:
        return
    if code == ADD:
        (<Value>a)._grad = (<Value>a)._grad + g
        (<Value>b)._grad = (<Value>b)._grad + g
    elif code == MUL:
        (<Value>a)._grad = (<Value>a)._grad + (<Value>b)._data * g
        (<Value>b)._grad = (<Value>b)._grad + (<Value>a)._data * g
    elif code == POWC:
        k = (<Value>node)._aux
        (<Value>a)._grad = (<Value>a)._grad + (k * pow((<Value>a)._data, k - 1.0)) * g
    elif code == POW:
        k = (<Value>b)._data
        (<Value>a)._grad = (<Value>a)._grad + (k * pow((<Value>a)._data, k - 1.0)) * g
        (<Value>b)._grad = (<Value>b)._grad + _exponent_slope((<Value>a)._data, k, (<Value>node)._data) * g
    elif code == RELU:
        (<Value>a)._grad = (<Value>a)._grad + ((<Value>node)._data > 0) * g
    elif code == TANH:
        s = (<Value>node)._data
        (<Value>a)._grad = (<Value>a)._grad + (1.0 - s * s) * g
    elif code == EXP:
        (<Value>a)._grad = (<Value>a)._grad + (<Value>node)._data * g
    elif code == LOG:
        (<Value>a)._grad = (<Value>a)._grad + g / (<Value>a)._data
    elif code == SIGMOID:
        s = (<Value>node)._data
        (<Value>a)._grad = (<Value>a)._grad + (s * (1.0 - s)) * g


ctypedef struct Frame:
    PyObject *node
    int next_child


cdef PyObject **_topological_order(Value root, Py_ssize_t *count):
    """Interior nodes below root, children before parents: the post-order of a depth-first
    search visiting children in _prev order, as pure._topological_order (leaves are left out:
    their backward does nothing). Returns a malloc'd array (caller frees), NULL on no memory."""
    global _epoch
    _epoch += 1
    cdef unsigned long long epoch = _epoch
    cdef Py_ssize_t depth = 0, stack_cap = 64, n = 0, topo_cap = 64
    cdef Frame *stack = <Frame *>malloc(stack_cap * sizeof(Frame))
    cdef PyObject **topo = <PyObject **>malloc(topo_cap * sizeof(PyObject *))
    cdef Frame *top
    cdef void *grown
    cdef PyObject *child
    if stack == NULL or topo == NULL:
        free(stack)
        free(topo)
        return NULL
    root._mark = epoch
    stack[0].node = <PyObject *>root
    stack[0].next_child = 0
    depth = 1
    while depth > 0:
        top = &stack[depth - 1]
        child = NULL
        if top.next_child == 0:
            child = (<Value>top.node)._a
        elif top.next_child == 1:
            child = (<Value>top.node)._b
        if child != NULL:
            top.next_child += 1
            if (<Value>child)._mark != epoch:
                (<Value>child)._mark = epoch
                if (<Value>child)._a != NULL:  # an interior node: descend into it
                    if depth == stack_cap:
                        stack_cap *= 2
                        grown = realloc(stack, stack_cap * sizeof(Frame))
                        if grown == NULL:
                            free(stack)
                            free(topo)
                            return NULL
                        stack = <Frame *>grown
                    stack[depth].node = child
                    stack[depth].next_child = 0
                    depth += 1
        else:  # all children done: the node goes after them
            depth -= 1
            if (<Value>top.node)._a != NULL:
                if n == topo_cap:
                    topo_cap *= 2
                    grown = realloc(topo, topo_cap * sizeof(PyObject *))
                    if grown == NULL:
                        free(stack)
                        free(topo)
                        return NULL
                    topo = <PyObject **>grown
                topo[n] = top.node
                n += 1
    free(stack)
    count[0] = n
    return topo


# ---------------------------------------------------------------------------------------------
# Freeing: dropping the last reference to the head of a long chain would free the chain by
# recursion in C, one stack frame per node, and crash near depth 10^5. Instead a node that
# is about to be freed hands children it holds the last reference to to a queue, and the
# outermost __dealloc__ frees the queue in a loop (the idea of CPython's "trashcan").

cdef PyObject **_released = NULL
cdef Py_ssize_t _released_len = 0
cdef Py_ssize_t _released_cap = 0
cdef bint _draining = False


cdef inline void _release(PyObject *child) noexcept:
    """Drop one reference to child, deferring its deallocation if this is the last one."""
    global _released, _released_len, _released_cap
    cdef void *grown
    if child == NULL:
        return
    if Py_REFCNT(child) > 1:
        _decref(child)
        return
    if _released_len == _released_cap:
        grown = realloc(_released, (2 * _released_cap + 256) * sizeof(PyObject *))
        if grown == NULL:  # no memory for the queue: free now (recursion, but only here)
            _decref(child)
            return
        _released = <PyObject **>grown
        _released_cap = 2 * _released_cap + 256
    _released[_released_len] = child  # the queue now owns our reference
    _released_len += 1


cdef inline void _drain_released() noexcept:
    global _released, _released_len, _released_cap, _draining
    if _draining:
        return  # an outer __dealloc__ is already freeing the queue
    _draining = True
    while _released_len > 0:
        _released_len -= 1
        _decref(_released[_released_len])  # its __dealloc__ queues its own children
    _draining = False
    if _released_cap > 65536:  # give back the memory of a huge free
        free(_released)
        _released = NULL
        _released_cap = 0
