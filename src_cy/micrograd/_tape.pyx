# cython: language_level=3
"""The compiled tape: ``micrograd.tape.PythonTape``'s arrays and loops, in C, without the GIL.

Layout (structure of arrays, as PythonTape's): slots 0..L-1 hold the leaves, slots L..N-1 the
interior nodes in eager backward's order, the root last. ``data``/``grad`` have a double per
slot; interior node j (slot L+j) has an op code ``code[j]`` (uint8) and child slots ``a[j]``,
``b[j]`` (int32; for powc ``b[j]`` indexes ``consts``, the distinct constant exponents);
``leaves`` holds an owned reference per leaf. That is 25 bytes per interior node and 24 per
leaf. The formulas are the ones eager mode runs, ``micrograd/_kernels.h``'s (``mg_forward``,
``mg_local_grads``), so that replay and eager mode give the same bits. Nodes built by hand
(a Python ``_backward``, constant local gradients) are refused: their rule was fixed in Python
when they were built, and cannot be replayed.

Capture walks the graph with an explicit stack (any depth), noting in each node's visit mark
that it met the node and where it put it (see CAPTURING), and puts every mark back after:
linear time, and no memory beyond the tape's own arrays and the stack.
"""
cimport cython
from cpython.ref cimport PyObject, Py_INCREF, Py_DECREF
from libc.stdint cimport int32_t, uint8_t, uint32_t, uint64_t, uintptr_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcpy, memmove, memset
from micrograd._engine cimport Value, LINK
from micrograd._kernels cimport *

from micrograd import _ops, kernels
from micrograd import tape as _api

# Every op of micrograd._ops.OPS (micrograd._engine checks that _kernels.h has exactly those).
SUPPORTED_CODES = frozenset(range(MG_N_OPS))

cdef enum:
    NO_ERROR = -1
    # Internal codes: a mul whose result the next node (an add) takes, run as one step. Eager
    # mode runs these as two nodes; here they run back to back with the same operations in the
    # same order, only without a dispatch between them and with the running sum kept in a
    # register (see _run_forward). Never shown: _structure() reports them as MUL and ADD.
    PAIR_MUL = 200
    PAIR_ADD = 201

if <int>MG_N_OPS > <int>PAIR_MUL:
    raise ImportError("micrograd._tape: op codes now reach PAIR_MUL; move the pair codes up")


# ---------------------------------------------------------------------------------------------
# Capture's marks. Capture notes in each node's own _mark field (the visit mark of the engine's
# graph walks) that it met the node, and where it put it: no table on the side, and no hashing.
# A packed mark is CAPTURING | this capture's serial << 32 | the node's position as an int32
# (leaf k as -1-k, interior node m as m, IN_PROGRESS while on the depth-first stack).
# The engine's walks (backward, the re-init cycle check) take a fresh epoch, counting up from 1,
# and treat any other mark as unvisited: an epoch never reaches 2^63, so a packed mark can never
# pass for one. Every capture puts the marks it set back to 0 (no epoch) before it returns or
# raises, and the walk runs no Python code (errors are built after the marks are put back), so
# the GIL is held throughout: no other thread, capture or backward ever sees a packed mark. The
# serial only makes a mark that a bug left behind look unvisited rather than visited.

cdef uint64_t CAPTURING = 1ULL << 63
cdef uint64_t STAMP_BITS = 0xFFFFFFFF00000000ULL
cdef int32_t IN_PROGRESS = -(2**31)  # below every leaf number (-1-k > -2^31: k < MAX_NODES)
cdef uint64_t UNMARKED = 0
cdef uint32_t _serial = 0


cdef inline uint64_t _new_stamp() noexcept:
    global _serial
    _serial = (_serial + 1) & 0x7FFFFFFF
    return CAPTURING | (<uint64_t>_serial << 32)


cdef inline bint _met(PyObject *node, uint64_t stamp) noexcept:
    """Whether this capture (stamp) has marked node."""
    return ((<Value>node)._mark & STAMP_BITS) == stamp


cdef inline int32_t _position(PyObject *node) noexcept:
    return <int32_t>(<uint32_t>((<Value>node)._mark & 0xFFFFFFFFULL))


cdef inline void _put(PyObject *node, uint64_t stamp, int32_t position) noexcept:
    (<Value>node)._mark = stamp | <uint32_t>position


cdef enum:
    # what the walk found wrong (its exception is raised once the marks are put back)
    WALK_OK = 0
    WALK_CYCLE
    WALK_HAND_BUILT     # Walk.bad: the node
    WALK_UNSUPPORTED    # Walk.bad: the node, whose op code has no forward rule
    WALK_TOO_LARGE
    WALK_NO_OUTPUT      # Walk.missing: the index of an output the graph lacks


# A node on the depth-first stack: its address, and in the two low bits (an object's address is
# a multiple of 8) how many of its children the walk has taken. 8 bytes an entry: a chain's
# stack is as deep as the chain.
ctypedef uintptr_t Frame


cdef inline PyObject *_frame_node(Frame frame) noexcept:
    return <PyObject *>(frame & ~(<uintptr_t>3))


ctypedef struct Walk:
    uint64_t stamp
    Frame *stack            # the depth-first stack: nodes marked IN_PROGRESS
    Py_ssize_t depth, stack_cap
    PyObject **nodes        # interior nodes in emission order (borrowed: the root holds them)
    Py_ssize_t interior_cap, leaf_cap
    PyObject *bad
    Py_ssize_t missing
    bint unmarked           # _make_slots put the marks back


# ---------------------------------------------------------------------------------------------
# Growing arrays during capture (doubling; realloc moves large blocks by remapping, not copying)

cdef int _resize(void **array, Py_ssize_t n, size_t item) except -1:
    """Reallocate array[0] to n items (at least one), keeping its contents."""
    cdef void *grown = realloc(array[0], max(n, 1) * item)
    if grown == NULL:
        raise MemoryError("Tape: out of memory capturing the graph")
    array[0] = grown
    return 0


cdef inline int32_t _resolve(int32_t position, Py_ssize_t n_leaves) noexcept:
    """The slot of a node numbered during capture: leaf k was -1-k, interior node m was m."""
    return <int32_t>(-1 - position) if position < 0 else <int32_t>(n_leaves + position)


@cython.final
cdef class CompiledTape:
    """The tape of the compiled engine (see micrograd.tape.Tape for the API)."""

    cdef Py_ssize_t n_leaves, n_interior, n_consts, n_outputs
    cdef double *data           # n_leaves + n_interior slots
    cdef double *grad
    cdef uint8_t *code          # n_interior
    cdef int32_t *a
    cdef int32_t *b
    cdef double *consts         # n_consts distinct constant exponents
    cdef PyObject **leaf_refs   # n_leaves owned references
    cdef int32_t *output_slots  # n_outputs
    cdef Value _root
    cdef tuple _outputs
    cdef bint captured          # __init__ finished: every array matches its count
    cdef bint complete          # data holds a whole forward pass (False after a failed one)
    cdef bint busy              # a replay is running (the GIL is released during it)

    def __init__(self, Value root not None, *, outputs=()):
        if self._root is not None:
            raise TypeError("CompiledTape.__init__ cannot be called twice")
        self._outputs = _api.check_outputs(outputs, Value)
        self._root = root
        self._capture(root)
        self.captured = True  # only now may the arrays be read (a failed capture leaves gaps)
        self.complete = True  # a fresh tape holds the captured graph's values

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self.leaf_refs != NULL:
            for i in range(self.n_leaves):
                Py_DECREF(<object>self.leaf_refs[i])
        free(self.leaf_refs)
        free(self.data)
        free(self.grad)
        free(self.code)
        free(self.a)
        free(self.b)
        free(self.consts)
        free(self.output_slots)

    # -- capture -------------------------------------------------------------------------------
    cdef int _capture(self, Value root) except -1:
        """Record the graph behind root: a depth-first search visiting children in _prev order
        that emits each node after its children (the order of pure._topological_order). Leaves
        and interior nodes are numbered apart, in the nodes' marks (see CAPTURING); child slots
        are resolved at the end, once the number of leaves (the offset of the interior slots) is
        known. Whatever happens, every mark set is put back before this returns or raises."""
        cdef Walk w
        cdef int status
        cdef dict const_index = {}  # bits of an exponent -> its index in consts
        memset(&w, 0, sizeof(Walk))
        w.stamp = _new_stamp()
        try:
            status = self._walk(root, &w, const_index)
            if status == WALK_OK:
                status = self._find_outputs(&w)
            if status == WALK_OK:
                self._make_slots(&w)  # puts the marks back: none is left for the finally
        finally:
            self._unmark(&w)
            free(w.stack)
            free(w.nodes)
        if status != WALK_OK:  # only now: building the exception may run Python code
            raise self._walk_error(status, &w)
        self._resolve_children()
        self._mark_pairs()
        return 0

    cdef int _walk(self, Value root, Walk *w, dict const_index) except -1:
        """The depth-first search: fill leaf_refs, nodes (interior nodes) and code/a/b with
        child positions. Runs no Python code. WALK_OK or what went wrong (Walk.bad)."""
        cdef uint64_t stamp = w.stamp
        cdef Py_ssize_t max_nodes = _api.MAX_NODES  # read once: a module lookup per node costs
        cdef PyObject *child
        cdef PyObject *node
        cdef Frame *top
        cdef uintptr_t taken
        cdef int32_t position
        cdef Py_ssize_t m
        cdef int code
        if root.code == MG_LEAF:  # the root is a leaf: a tape of one node
            child = <PyObject *>root
        else:
            w.stack_cap = 64
            _resize(<void **>&w.stack, w.stack_cap, sizeof(Frame))
            _put(<PyObject *>root, stamp, IN_PROGRESS)
            w.stack[0] = <Frame><PyObject *>root
            w.depth = 1
            child = NULL
        while w.depth > 0 or child != NULL:
            if child != NULL:  # a child not met yet (or a leaf root)
                if (<Value>child).code == MG_LEAF:  # a leaf: emitted on the spot
                    if self.n_leaves + self.n_interior >= max_nodes:
                        return WALK_TOO_LARGE
                    if self.n_leaves == w.leaf_cap:
                        w.leaf_cap = max(64, 2 * w.leaf_cap)
                        _resize(<void **>&self.leaf_refs, w.leaf_cap, sizeof(PyObject *))
                    Py_INCREF(<object>child)
                    self.leaf_refs[self.n_leaves] = child
                    _put(child, stamp, <int32_t>(-1 - self.n_leaves))
                    self.n_leaves += 1
                else:  # an interior node: descend
                    if w.depth == w.stack_cap:
                        w.stack_cap *= 2
                        _resize(<void **>&w.stack, w.stack_cap, sizeof(Frame))
                    _put(child, stamp, IN_PROGRESS)
                    w.stack[w.depth] = <Frame>child
                    w.depth += 1
                child = NULL
                continue
            top = &w.stack[w.depth - 1]
            node = _frame_node(top[0])
            taken = top[0] & 3
            if taken < 2:
                child = (<Value>node)._a if taken == 0 else (<Value>node)._b
                top[0] += 1
                if child != NULL and _met(child, stamp):  # emitted already, or an ancestor
                    if _position(child) == IN_PROGRESS:
                        return WALK_CYCLE
                    child = NULL
                continue
            # all children emitted: emit the node. Nodes built by hand are refused here, in
            # the order the pure tape meets them (post-order), so both name the same node.
            code = (<Value>node).code
            if code == LINK:  # holds the children of a node built by hand, refused next
                (<Value>node)._mark = UNMARKED
                w.depth -= 1
                continue
            if code >= MG_N_OPS:
                w.bad = node
                return WALK_HAND_BUILT
            if mg_arity(code) <= 0:
                w.bad = node
                return WALK_UNSUPPORTED
            if self.n_leaves + self.n_interior >= max_nodes:
                return WALK_TOO_LARGE
            m = self.n_interior
            if m == w.interior_cap:
                w.interior_cap = max(64, 2 * w.interior_cap)
                _resize(<void **>&w.nodes, w.interior_cap, sizeof(PyObject *))
                _resize(<void **>&self.code, w.interior_cap, sizeof(uint8_t))
                _resize(<void **>&self.a, w.interior_cap, sizeof(int32_t))
                _resize(<void **>&self.b, w.interior_cap, sizeof(int32_t))
            self.code[m] = <uint8_t>code
            self.a[m] = _position((<Value>node)._a)
            if code == MG_POWC:
                self.b[m] = self._const_index((<Value>node)._aux, const_index)
            elif (<Value>node)._b != NULL:
                self.b[m] = _position((<Value>node)._b)
            else:
                self.b[m] = 0
            w.nodes[m] = node
            _put(node, stamp, <int32_t>m)
            self.n_interior += 1
            w.depth -= 1
        return WALK_OK

    cdef object _walk_error(self, int status, Walk *w):
        if status == WALK_CYCLE:
            return _api.graph_has_cycle()
        if status == WALK_HAND_BUILT:
            return _api.hand_built_node(<object>w.bad)
        if status == WALK_UNSUPPORTED:
            return _api.unsupported_op((<Value>w.bad).code)
        if status == WALK_TOO_LARGE:
            return _api.too_large(self.n_leaves + self.n_interior + 1)
        return _api.output_not_in_graph(w.missing, self._outputs[w.missing])

    cdef void _unmark(self, Walk *w) noexcept:
        """Put back every mark this capture set (unless _make_slots did): leaves, emitted
        interior nodes, and after a failure the nodes still on the stack."""
        cdef Py_ssize_t i
        if w.unmarked:
            return
        for i in range(self.n_leaves):
            (<Value>self.leaf_refs[i])._mark = UNMARKED
        for i in range(self.n_interior):
            (<Value>w.nodes[i])._mark = UNMARKED
        for i in range(w.depth):
            (<Value>_frame_node(w.stack[i]))._mark = UNMARKED

    cdef int32_t _const_index(self, double k, dict index) except -1:
        """The index of exponent k in consts, added if new (one entry per distinct bit pattern)."""
        cdef uint64_t bits
        memcpy(&bits, &k, sizeof(double))
        found = index.get(bits)
        if found is not None:
            return <int32_t>found
        if self.n_consts % 16 == 0:
            _resize(<void **>&self.consts, self.n_consts + 16, sizeof(double))
        self.consts[self.n_consts] = k
        index[bits] = self.n_consts
        self.n_consts += 1
        return <int32_t>(self.n_consts - 1)

    cdef void _resolve_children(self) noexcept:
        cdef Py_ssize_t j
        cdef uint8_t c
        for j in range(self.n_interior):
            c = self.code[j]
            self.a[j] = _resolve(self.a[j], self.n_leaves)
            if mg_arity(c) == 2:
                self.b[j] = _resolve(self.b[j], self.n_leaves)

    cdef void _mark_pairs(self) noexcept:
        """Mark each mul followed by an add that takes its result (a neuron's w*x + sum)."""
        cdef Py_ssize_t j = 0
        cdef int32_t mul_slot
        while j + 1 < self.n_interior:
            mul_slot = <int32_t>(self.n_leaves + j)
            if (self.code[j] == MG_MUL and self.code[j + 1] == MG_ADD
                    and (self.a[j + 1] == mul_slot or self.b[j + 1] == mul_slot)):
                self.code[j] = PAIR_MUL
                self.code[j + 1] = PAIR_ADD
                j += 2
            else:
                j += 1

    cdef int _find_outputs(self, Walk *w) except -1:
        """Each output's slot, read from its mark: WALK_OK, or WALK_NO_OUTPUT (Walk.missing)."""
        cdef Py_ssize_t i
        cdef PyObject *out
        _resize(<void **>&self.output_slots, len(self._outputs), sizeof(int32_t))
        self.n_outputs = len(self._outputs)
        for i in range(self.n_outputs):
            out = <PyObject *>self._outputs[i]
            if not _met(out, w.stamp):
                w.missing = i
                return WALK_NO_OUTPUT
            self.output_slots[i] = _resolve(_position(out), self.n_leaves)
        return WALK_OK

    cdef int _make_slots(self, Walk *w) except -1:
        """data = the captured values (leaves, then interior nodes); grad = zeros. data takes
        over the buffer of Walk.nodes (a pointer and a double have the same size), so capture
        never holds a second copy of the graph's size; each mark is put back on the way."""
        cdef Py_ssize_t n = self.n_leaves + self.n_interior, i
        cdef char *buffer
        cdef PyObject *node
        cdef double x
        _resize(<void **>&w.nodes, n, sizeof(double))
        buffer = <char *>w.nodes
        # interior nodes move up past the leaves' slots; each slot then trades its node for its
        # value (memcpy: the buffer is read as pointers and written as doubles)
        memmove(buffer + self.n_leaves * sizeof(double), buffer, self.n_interior * sizeof(double))
        for i in range(self.n_leaves, n):
            memcpy(&node, buffer + i * sizeof(double), sizeof(double))
            (<Value>node)._mark = UNMARKED
            x = (<Value>node)._data
            memcpy(buffer + i * sizeof(double), &x, sizeof(double))
        for i in range(self.n_leaves):
            node = self.leaf_refs[i]
            (<Value>node)._mark = UNMARKED
            x = (<Value>node)._data
            memcpy(buffer + i * sizeof(double), &x, sizeof(double))
        self.data = <double *>buffer
        w.nodes = NULL
        w.unmarked = True
        self.grad = <double *>calloc(max(n, 1), sizeof(double))
        if self.grad == NULL:
            raise MemoryError("Tape: out of memory capturing the graph")
        # trim the arrays to their size
        _resize(<void **>&self.code, self.n_interior, sizeof(uint8_t))
        _resize(<void **>&self.a, self.n_interior, sizeof(int32_t))
        _resize(<void **>&self.b, self.n_interior, sizeof(int32_t))
        _resize(<void **>&self.leaf_refs, self.n_leaves, sizeof(PyObject *))
        return 0

    # -- public API ----------------------------------------------------------------------------
    @property
    def engine(self):
        return "cython"

    @property
    def root(self):
        return self._root

    @property
    def outputs(self):
        return self._outputs

    @property
    def leaves(self):
        return tuple([<object>self.leaf_refs[i] for i in range(self.n_leaves)])

    def __len__(self):
        return self.n_leaves + self.n_interior

    @property
    def nbytes(self):
        return _api.tape_nbytes(self.n_leaves, self.n_interior, self.n_consts, self.n_outputs)

    def __repr__(self):
        return _api.tape_repr(self)

    def __reduce__(self):
        raise TypeError(_api.NOT_PICKLABLE)

    def forward(self):
        """Recompute every node from the leaves' current .data; return the root's value."""
        cdef Py_ssize_t i, failed
        cdef Py_ssize_t last = self.n_leaves + self.n_interior - 1
        self._enter("forward")
        try:
            for i in range(self.n_leaves):
                self.data[i] = (<Value>self.leaf_refs[i])._data
            self.complete = False
            with nogil:
                failed = self._run_forward()
            if failed != NO_ERROR:
                self._raise_forward_error(failed)
            self.complete = True
            self._root._data = self.data[last]
            for i in range(self.n_outputs):
                (<Value>self._outputs[i])._data = self.data[self.output_slots[i]]
            return self.data[last]
        finally:
            self.busy = False

    def backward(self):
        """Accumulate d(root)/d(leaf) into every leaf's .grad (root's grad set to 1)."""
        cdef Py_ssize_t i, failed
        self._enter("backward")  # first: a forward running in another thread is not a failed one
        try:
            if not self.complete:
                raise _api.not_replayable()
            for i in range(self.n_leaves):
                self.grad[i] = (<Value>self.leaf_refs[i])._grad
            with nogil:
                failed = self._run_backward()
            if failed != NO_ERROR:
                raise _ops.unknown_op(self.code[failed - self.n_leaves])
            for i in range(self.n_leaves):
                (<Value>self.leaf_refs[i])._grad = self.grad[i]
            self._root._grad = 1.0
        finally:
            self.busy = False

    cdef int _enter(self, str what) except -1:
        self._check_captured(what)
        if self.busy:
            raise _api.busy(what)
        self.busy = True
        return 0

    cdef int _check_captured(self, str what) except -1:
        if not self.captured:  # made with __new__ alone, or its capture failed
            raise _api.not_captured(what)
        return 0

    def _fused_pairs(self):
        """How many mul-add pairs replay runs as one step (for tests of that path)."""
        cdef Py_ssize_t j
        self._check_captured("_fused_pairs")
        return sum([1 for j in range(self.n_interior) if self.code[j] == PAIR_MUL])

    def _structure(self):
        """(codes, a, b, consts, output slots, leaf count) as lists: for tests comparing engines."""
        cdef Py_ssize_t j
        self._check_captured("_structure")
        return ([_op_of(self.code[j]) for j in range(self.n_interior)],
                [self.a[j] for j in range(self.n_interior)],
                [self.b[j] for j in range(self.n_interior)],
                [self.consts[j] for j in range(self.n_consts)],
                [self.output_slots[j] for j in range(self.n_outputs)],
                self.n_leaves)

    # -- the replay loops: the kernels eager mode runs, in the same order ---------------------
    cdef Py_ssize_t _run_forward(self) noexcept nogil:
        """Recompute the interior slots; NO_ERROR, or the slot of the first op that failed
        (the slots before it are then updated, the rest not)."""
        cdef double *data = self.data
        cdef const uint8_t *code = self.code
        cdef const int32_t *a = self.a
        cdef const int32_t *b = self.b
        cdef const double *consts = self.consts
        cdef Py_ssize_t n_leaves = self.n_leaves, n = self.n_interior, j = 0
        cdef double y, r
        cdef uint8_t c
        while j < n:
            c = code[j]
            if c == PAIR_MUL:
                j = _forward_pairs(data, a, b, code, n_leaves, n, j)
                continue
            y = consts[b[j]] if c == MG_POWC else data[b[j]]  # unused by one-operand ops
            if mg_forward(c, data[a[j]], y, &r) != MG_OK:
                return n_leaves + j
            data[n_leaves + j] = r
            j += 1
        return NO_ERROR

    cdef int _raise_forward_error(self, Py_ssize_t slot) except -1:
        """Raise what eager mode raises for the op in this slot (its inputs are still there)."""
        cdef Py_ssize_t j = slot - self.n_leaves
        cdef uint8_t c = self.code[j]
        cdef double y = self.consts[self.b[j]] if c == MG_POWC else self.data[self.b[j]]
        raise kernels.forward_error(c, self.data[self.a[j]], y)

    cdef Py_ssize_t _run_backward(self) noexcept nogil:
        """Interior grads from 0, root's 1, leaves' as copied in; then the chain rule of every
        node, root first, each adding local derivative * grad into its children in order.
        NO_ERROR, or the slot of a node whose op code is unknown."""
        cdef const double *data = self.data
        cdef double *grad = self.grad
        cdef const uint8_t *code = self.code
        cdef const int32_t *a = self.a
        cdef const int32_t *b = self.b
        cdef const double *consts = self.consts
        cdef Py_ssize_t n_leaves = self.n_leaves, j = self.n_interior - 1, i
        cdef double y
        cdef double *gb
        cdef int32_t ib
        cdef uint8_t c
        memset(grad + n_leaves, 0, self.n_interior * sizeof(double))
        grad[n_leaves + self.n_interior - 1] = 1.0
        while j >= 0:
            c = code[j]
            if c == PAIR_ADD:
                j = _backward_pairs(data, grad, a, b, code, n_leaves, j)
                continue
            i = n_leaves + j
            ib = b[j]
            if c == MG_POWC:  # b indexes the exponents
                y = consts[ib]
                gb = NULL
            else:  # b's slot (unused by one-operand ops)
                y = data[ib]
                gb = &grad[ib]
            if mg_backward(c, data[a[j]], y, data[i], grad[i], &grad[a[j]], gb) != MG_OK:
                return i
            j -= 1
        return NO_ERROR


# ---------------------------------------------------------------------------------------------
# Runs of mul-add pairs (a neuron's sum of w*x): the same operations as the loops above, in the
# same order, but without a dispatch per node, and with the running sum carried in a register
# from one pair to the next instead of through memory (a store then a load of the same slot
# costs several cycles, and every pair of the run would wait for it). A register copy is used
# only where it equals what memory holds, so the results are those of the plain loops.

cdef inline Py_ssize_t _forward_pairs(double *data, const int32_t *a, const int32_t *b,
                                      const uint8_t *code, Py_ssize_t n_leaves, Py_ssize_t n,
                                      Py_ssize_t j) noexcept nogil:
    """Run the pairs from j on (mul at j, add at j+1, ...); return the index after the run."""
    cdef Py_ssize_t last = -1  # slot of the previous pair's sum, held in `total`
    cdef double m, x, y, total = 0.0
    cdef Py_ssize_t mul_slot
    cdef int32_t ia, ib
    while True:
        mul_slot = n_leaves + j
        m = mg_mul(data[a[j]], data[b[j]])
        data[mul_slot] = m
        ia = a[j + 1]
        ib = b[j + 1]
        x = total if ia == last else (m if ia == mul_slot else data[ia])
        y = total if ib == last else (m if ib == mul_slot else data[ib])
        total = mg_add(x, y)
        data[mul_slot + 1] = total
        last = mul_slot + 1
        j += 2
        if j >= n or code[j] != PAIR_MUL:
            return j


cdef inline Py_ssize_t _backward_pairs(const double *data, double *grad, const int32_t *a,
                                       const int32_t *b, const uint8_t *code,
                                       Py_ssize_t n_leaves, Py_ssize_t j) noexcept nogil:
    """Run the pairs from j down (add at j, mul at j-1, ...); return the index below the run."""
    cdef Py_ssize_t held = -1  # a slot whose grad is also in `held_grad`
    cdef double g, gm, held_grad = 0.0
    cdef Py_ssize_t add_slot
    cdef int32_t ia, ib, wa, wb
    while True:
        add_slot = n_leaves + j
        g = held_grad if add_slot == held else grad[add_slot]
        ia = a[j]
        ib = b[j]
        wa = a[j - 1]
        wb = b[j - 1]
        held_grad = grad[ia] + g  # the add: grad[ia] += g; grad[ib] += g
        grad[ia] = held_grad
        grad[ib] += g
        gm = grad[add_slot - 1]  # the mul
        grad[wa] += data[wb] * gm
        grad[wb] += data[wa] * gm
        # grad[ia] stays valid in the register unless a later add of this pair wrote it
        held = ia if (ia != ib and ia != wa and ia != wb) else -1
        j -= 2
        if j < 0 or code[j] != PAIR_ADD:
            return j


cdef inline uint8_t _op_of(uint8_t code) noexcept:
    """The engine's op code of a tape code (a pair's codes are MUL and ADD)."""
    return MG_MUL if code == PAIR_MUL else (MG_ADD if code == PAIR_ADD else code)


cdef int _check_replayable(Value node) except -1:
    """A tape replays ops only: refuse a node built by hand (its rule was fixed in Python)."""
    if node.code >= MG_N_OPS:
        raise _api.hand_built_node(node)
    return 0


_api.Tape.register(CompiledTape)
