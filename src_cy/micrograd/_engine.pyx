# cython: language_level=3
"""The compiled engine: the same ``Value`` as ``micrograd/pure.py``, with the graph held in C.

Each node is a C struct with its data, grad, two child pointers, an op code, an auxiliary
double (the exponent of ``powc``), a visit mark and one object field (the label, or the state
of a node built by hand). ``backward()`` is an iterative depth-first search followed by a
reverse loop that switches on the op code: no Python call, closure, set or dict per node. The
formulas are ``micrograd/_kernels.h``'s, the C twin of ``micrograd/kernels.py``, and gradients
accumulate in the pure engine's order, so both engines give identical bits.

Nodes built by hand (``Value(data, children, '<op>')`` with a Python ``_backward``, or
``Value(data, children, local_grads)``) keep their extra state in a ``_HandBuilt`` in the
object field; a backward pass that meets one goes on in a slower loop that runs them (and
holds a reference to every node while Python code runs). Their children are linked through
``_a``/``_b`` like an op's, so that the graph walks stay two-pointer loops (see ``_links``).

Memory: nodes are not tracked by the cyclic garbage collector (a node only points at nodes
made before it: ``__init__`` refuses children that would make a cycle), which keeps a node at
80 bytes and spares the collector from scanning 10^6-node graphs. The exception: a Python
``_backward`` that refers to its own node (as the lecture's closures do) makes a cycle through
that node, which is then never freed. Freeing a long chain would recurse once per node in C;
``__dealloc__`` instead queues children and frees them in a loop.
"""
cimport cython
from cpython.ref cimport PyObject, Py_INCREF
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.float cimport PyFloat_AS_DOUBLE
from micrograd._engine cimport *
from micrograd._kernels cimport *
from libc.stdlib cimport free, malloc, realloc

from micrograd import _ops
from micrograd import kernels as _py_kernels  # the Python twins: their error messages

cdef extern from "Python.h":
    Py_ssize_t Py_REFCNT(PyObject *o)
    void _decref "Py_DECREF"(PyObject *o)  # on a raw pointer, where Cython's takes an object


def _check_codes():
    """The C op codes (micrograd/_kernels.h) and node kinds must be micrograd._ops's."""
    names = MG_OP_NAMES.decode().split()
    if names != [op.name for op in _ops.OPS] or MG_N_OPS != len(_ops.OPS):
        raise ImportError(f"micrograd/_kernels.h ops {names} differ from micrograd._ops.OPS")
    if (CUSTOM, LOCAL_GRADS) != (_ops.CUSTOM, _ops.LOCAL_GRADS):
        raise ImportError("micrograd._engine's hand-built node codes differ from micrograd._ops")


_check_codes()
OP_CODES = dict(zip(MG_OP_NAMES.decode().split(), range(MG_N_OPS)))

# Each graph walk (backward(), a cycle check) marks the nodes it visits with a new epoch.
cdef unsigned long long _epoch = 0


@cython.final
cdef class _HandBuilt:
    """What a node built by hand carries besides the C fields (in Value._extra)."""
    cdef object label           # str
    cdef str op                 # its _op string
    cdef object backward        # the Python function assigned to _backward, or None
    cdef tuple local_grads      # LOCAL_GRADS nodes: one float per child
    cdef tuple children         # all its children, in order


@cython.no_gc
@cython.freelist(1024)
cdef class Value:
    """stores a single scalar value and its gradient"""
    # C fields: declared in _engine.pxd, so that other compiled modules can cimport them.

    def __init__(self, data, _children=(), _op="", label="", *, local_grads=None):
        # Everything is checked before anything is assigned: a failed __init__ changes nothing.
        cdef double d = _as_double(data)
        cdef tuple kids = _ops.check_children(_children, Value) if _children else ()
        cdef int code
        if not isinstance(_op, str) and _op is not None and local_grads is None:
            local_grads, _op = _op, ""  # microgpt's Value(data, children, local_grads)
        op = _ops.check_op(_op)
        extra = _ops.check_label(label) or None
        grads = None if local_grads is None else _ops.check_local_grads(local_grads, len(kids))
        if not kids and not op:
            code = MG_LEAF
        elif grads is not None and (kids or op):
            code = LOCAL_GRADS
        else:
            code = CUSTOM
        # A Value nothing else refers to yet (a new one) cannot be below its children; one that
        # is re-initialised might be: refuse what would close a cycle.
        if kids and Py_REFCNT(<PyObject *>self) > 1 and _reaches(kids, self):
            raise _ops.creates_cycle(self, kids)
        links = kids
        if code != MG_LEAF:
            extra = _hand_built(extra, op, None, grads, kids)
            links = _links(kids)
        # assign
        cdef PyObject *old_a = self._a
        cdef PyObject *old_b = self._b
        self._a = self._b = NULL
        if len(links) > 0:
            Py_INCREF(links[0])
            self._a = <PyObject *>links[0]
        if len(links) > 1:
            Py_INCREF(links[1])
            self._b = <PyObject *>links[1]
        self._data = d
        self._grad = 0.0
        self._aux = 0.0
        self.code = code
        self._extra = extra
        _release(old_a)  # only when __init__ is called again on a live Value
        _release(old_b)
        _drain_released()  # free now what the old children held alone, as __dealloc__ does

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
        extra = self._extra
        if extra is None:
            return ""
        if type(extra) is _HandBuilt:
            return (<_HandBuilt>extra).label
        return extra

    @label.setter
    def label(self, value):
        label = _ops.check_label(value)
        if type(self._extra) is _HandBuilt:
            (<_HandBuilt>self._extra).label = label
        else:
            self._extra = label or None

    @property
    def _op(self):
        if self.code == CUSTOM or self.code == LOCAL_GRADS:
            return (<_HandBuilt>self._extra).op
        return _ops.symbol(self.code, self._aux)

    @property
    def _code(self):
        """The op code (micrograd._ops.OPS), or _ops.CUSTOM / _ops.LOCAL_GRADS."""
        return self.code

    @property
    def _prev(self):
        if self.code >= CUSTOM:
            return (<_HandBuilt>self._extra).children
        if self._a == NULL:
            return ()
        if self._b == NULL:
            return (<Value>self._a,)
        return (<Value>self._a, <Value>self._b)

    @property
    def _children(self):
        """The children, in order (microgpt's name for _prev)."""
        return self._prev

    @property
    def _local_grads(self):
        """d(self)/d(child) for each child, in order (microgpt's): computed from the current data
        for an op's node, as given for a Value(data, children, local_grads)."""
        cdef double x, y, da = 0.0, db = 0.0
        if self.code == MG_LEAF:
            return ()
        if self.code == LOCAL_GRADS:
            return (<_HandBuilt>self._extra).local_grads
        if self.code == CUSTOM:
            raise _ops.no_local_grads(self)
        x = (<Value>self._a)._data
        y = (<Value>self._b)._data if self._b != NULL else self._aux
        if mg_local_grads(self.code, x, y, self._data, &da, &db) != MG_OK:
            raise _ops.unknown_op(self.code)
        if self._b != NULL:
            return (da, db)
        return (da,)

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
            return _node(_checked_pow(self._data, k), MG_POW, self, <Value>other, 0.0)
        if not _ops.is_number(other):
            return NotImplemented
        k = _as_double(other)
        return _node(_checked_pow(self._data, k), MG_POWC, self, None, k)

    def relu(self):
        return _unary(self, MG_RELU)

    def tanh(self):
        return _unary(self, MG_TANH)

    def exp(self):
        return _unary(self, MG_EXP)

    def log(self):
        return _unary(self, MG_LOG)

    def sigmoid(self):
        return _unary(self, MG_SIGMOID)

    def abs(self):
        return _unary(self, MG_ABS)

    def __abs__(self):
        return _unary(self, MG_ABS)

    # -- backpropagation -----------------------------------------------------------------------
    @property
    def _backward(self):
        """This node's chain-rule step, as a function of no arguments (the lecture calls
        ``o._backward()`` node by node). Assign a Python function to give the node your own rule:
        backward() then calls it for this node (it reads ``out.grad``, adds into the children)."""
        if self.code == CUSTOM:
            fn = (<_HandBuilt>self._extra).backward
            return _no_backward if fn is None else fn
        return _RuleStep(self, self.code)

    @_backward.setter
    def _backward(self, fn):
        _ops.python_backward(fn)
        cdef _HandBuilt h
        if self.code != CUSTOM and self.code != LOCAL_GRADS:
            self._extra = _hand_built(self._extra, self._op, None, None, self._prev)
        h = <_HandBuilt>self._extra
        h.backward = fn
        self.code = CUSTOM
        if self._a == NULL:  # a leaf until now: link it, so that backward() reaches it
            Py_INCREF(_NO_CHILD)
            self._a = <PyObject *>_NO_CHILD

    def backward(self):
        """Set this node's grad to 1 and accumulate d(self)/d(node) into every node below it."""
        cdef Py_ssize_t n, i
        cdef PyObject **topo = _topological_order(self, &n)
        if topo == NULL:
            raise MemoryError("Value.backward: out of memory sorting the graph")
        self._grad = 1.0
        for i in range(n - 1, -1, -1):
            if (<Value>topo[i]).code >= CUSTOM or _backward_step(topo[i]) != MG_OK:
                # A node built by hand (or a bug): go on in the loop that runs those, from this
                # node down (the nodes above are done).
                _backward_with_python(topo, i + 1)  # frees topo
                return
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
        label = f", label={self.label!r}" if self.label else ""
        return f"Value(data={self._data!r}, grad={self._grad!r}{label})"

    def __reduce__(self):
        # A pickled Value is a leaf (data, grad, label), restored on whichever engine is active.
        from micrograd.engine import _restore_value
        return _restore_value, (self._data, self._grad, self.label)

    # A copy is a leaf too, as after pickling, but of this engine: copying stays in the process.
    def __copy__(self):
        cdef Value out = _leaf(self._data)
        out._grad = self._grad
        out.label = self.label  # a plain label: what a hand-built node carries besides stays behind
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


def _no_backward():
    """The backward of a node built by hand with no _backward assigned: nothing (Karpathy's)."""


@cython.final
cdef class _RuleStep:
    """``node._backward`` of an op's node: one chain-rule step of that op (and of a
    Value(data, children, local_grads): its local gradients)."""
    cdef Value node
    cdef int code

    def __cinit__(self, Value node, int code):
        self.node = node
        self.code = code

    def __call__(self):
        cdef Value node = self.node
        cdef int arity
        if self.code == LOCAL_GRADS:
            if type(node._extra) is not _HandBuilt or (<_HandBuilt>node._extra).local_grads is None:
                raise _ops.stale_backward(node)
            _local_grads_step(node)
            return
        arity = mg_arity(self.code)
        if arity < 0:
            raise _ops.unknown_op(self.code)
        # The node may have been re-initialised since this was read: check before using it.
        if (arity >= 1 and node._a == NULL) or (arity == 2 and node._b == NULL):
            raise _ops.stale_backward(node)
        if arity > 0:
            _rule_step(<PyObject *>node, self.code)

    def __repr__(self):
        return f"<chain-rule step of {self.node!r}, _op {self.node._op!r}>"


cdef _HandBuilt _hand_built(object label, str op, object backward, tuple local_grads, tuple children):
    cdef _HandBuilt h = _HandBuilt.__new__(_HandBuilt)
    h.label = label if type(label) is not _HandBuilt else (<_HandBuilt>label).label
    if h.label is None:
        h.label = ""
    h.op = op
    h.backward = backward
    h.local_grads = local_grads
    h.children = children
    return h


# The leaf a node built by hand with no child links to: every node that is not a leaf then has
# _a set, and the graph walks tell leaves by _a == NULL alone.
cdef Value _NO_CHILD = Value.__new__(Value)


cdef tuple _links(tuple kids):
    """What _a and _b of a node built by hand point at: its children when it has one or two;
    _NO_CHILD when it has none; for more, the first child and a LINK node (never shown) holding
    the rest the same way. A depth-first search through _a then _b then meets the children in
    order, as the pure engine's search through _prev does, and both order the graph alike.
    Built from the last pair backwards, in a loop: a node may be given 10^6 children."""
    cdef Py_ssize_t n = len(kids), i
    cdef Value link
    cdef object first, second
    if n == 0:
        return (_NO_CHILD,)
    if n <= 2:
        return kids
    first, second = kids[n - 2], kids[n - 1]
    for i in range(n - 3, -1, -1):  # (first, second) are the links of kids[i+1:]
        link = Value.__new__(Value)
        link.code = LINK
        Py_INCREF(first)
        link._a = <PyObject *>first
        Py_INCREF(second)
        link._b = <PyObject *>second
        first, second = kids[i], link
    return (first, second)


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


# _node (a new interior node) is in _engine.pxd, shared with the other compiled modules.


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
    return _node(mg_add(self._data, o._data), MG_ADD, self, o, 0.0)


cdef object _mul(Value self, object other):
    cdef Value o = _wrap(other)
    if o is None:
        return NotImplemented
    return _node(mg_mul(self._data, o._data), MG_MUL, self, o, 0.0)


cdef double _checked_pow(double x, double k) except? -1.0:
    """x ** k for the forward pass, or the error Python's float raises."""
    cdef double r
    if mg_pow(x, k, &r) != MG_OK:
        raise _py_kernels.forward_error(MG_POW, x, k)
    return r


cdef object _unary(Value self, int code):
    """The node of a one-operand op (relu, tanh, exp, log, sigmoid, abs) applied to self."""
    cdef double r
    if mg_forward(code, self._data, 0.0, &r) != MG_OK:
        raise _py_kernels.forward_error(code, self._data, 0.0)
    return _node(r, code, self, None, 0.0)


# ---------------------------------------------------------------------------------------------
# Backward: every op's chain rule is micrograd/_kernels.h's local derivatives times out.grad

cdef inline int _rule_step(PyObject *node, int code) noexcept:
    """One chain-rule step of op `code` at node: child.grad += local * node.grad, children in
    order. MG_OK, or MG_UNKNOWN_OP (leaves and hand-built nodes included: not ops).
    Nodes are reached through casts of borrowed pointers (the graph keeps them alive), which
    Cython compiles to plain struct accesses: no reference counting in the hot loop."""
    cdef PyObject *a = (<Value>node)._a
    cdef PyObject *b = (<Value>node)._b
    if b != NULL:
        return mg_backward(code, (<Value>a)._data, (<Value>b)._data, (<Value>node)._data,
                           (<Value>node)._grad, &(<Value>a)._grad, &(<Value>b)._grad)
    return mg_backward(code, (<Value>a)._data, (<Value>node)._aux, (<Value>node)._data,
                       (<Value>node)._grad, &(<Value>a)._grad, NULL)


cdef inline int _backward_step(PyObject *node) noexcept:
    """_rule_step with node's own code; node must not be a leaf or built by hand (no child)."""
    return _rule_step(node, (<Value>node).code)


cdef int _local_grads_step(Value node) except -1:
    """The backward of Value(data, children, local_grads): child i gets local_grads[i] * grad."""
    cdef _HandBuilt h = <_HandBuilt>node._extra
    cdef tuple grads = h.local_grads, children = h.children
    cdef double g = node._grad
    cdef Py_ssize_t i
    cdef PyObject *child
    for i in range(PyTuple_GET_SIZE(grads)):
        child = PyTuple_GET_ITEM(children, i)
        (<Value>child)._grad = (<Value>child)._grad + PyFloat_AS_DOUBLE(<object>PyTuple_GET_ITEM(grads, i)) * g
    return 0


cdef int _backward_with_python(PyObject **topo, Py_ssize_t n) except -1:
    """The backward loop of a graph holding a node built by hand: Python backward functions
    run here, and may change the graph, so every node is held until the pass is over."""
    cdef Py_ssize_t i
    cdef Value node
    cdef int code
    for i in range(n):
        Py_INCREF(<object>topo[i])
    try:
        for i in range(n - 1, -1, -1):
            node = <Value>topo[i]
            code = node.code
            if code == CUSTOM:
                fn = (<_HandBuilt>node._extra).backward
                if fn is not None:
                    fn()
            elif code == LOCAL_GRADS:
                _local_grads_step(node)
            elif code == MG_LEAF or code == LINK:
                pass  # a link has no rule; a leaf here was re-initialised during this pass
            elif _backward_step(topo[i]) != MG_OK:
                raise _ops.unknown_op(code)  # no op of micrograd._ops.OPS: a bug
    finally:
        node = None
        for i in range(n):
            _release(topo[i])
        free(topo)
        _drain_released()
    return 0


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


cdef bint _reaches(tuple roots, Value target) except -1:
    """Whether target is one of roots or below one of them (a depth-first search)."""
    global _epoch
    _epoch += 1
    cdef unsigned long long epoch = _epoch
    cdef list stack = list(roots)
    cdef Value node
    while stack:
        node = <Value>stack.pop()
        if node is target:
            return True
        if node._mark == epoch:
            continue
        node._mark = epoch
        if node._a != NULL and (<Value>node._a)._mark != epoch:
            stack.append(<Value>node._a)
        if node._b != NULL and (<Value>node._b)._mark != epoch:
            stack.append(<Value>node._b)
    return False


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
