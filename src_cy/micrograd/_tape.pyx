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

After capture, the matrix stage (_schedule.pyx) looks for grids of dot products: a layer of
neurons, ``sum((wi*xi ...), b)``, over a batch of samples in one graph. Where they hold enough
of the graph, it plans a replay of its own: forward by height, each grid one call to the matrix
kernels of micrograd/_matmul.h; backward in an order checked at capture to give every grad its
contributions in eager's order; in slots of its own that skip the products and partial sums no
one reads (``data``/``grad`` then hold the plan's slots, see _adopt_plan). Otherwise one pass
(``_fuse_dots``) finds the dot products and replays each in place as one loop with its running
sum in a register; where four neurons read one input it runs them side by side. Either way the
same operations run in the same order as eager mode's, and every grad receives its
contributions in eager's order, so the bits do not change (tests/test_tape_matrix.py,
tests/test_tape_fusion.py). The arrays of either (``_fused_nbytes()``) are not counted in
``nbytes``, which reports the layout both tapes share.
"""
cimport cython
from cpython.ref cimport PyObject, Py_INCREF, Py_DECREF
from libc.stddef cimport ptrdiff_t
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t, uintptr_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memmove, memset
from micrograd._engine cimport Value, LINK
from micrograd._kernels cimport *
from micrograd._schedule cimport *

from micrograd._matmul cimport mg_mm_backward_w, mg_mm_backward_x, mg_mm_forward

from micrograd import _ops, kernels
from micrograd import tape as _api

# Whether capture plans a matrix replay where it finds grids of dot products (_schedule.pyx).
# Tests of the dot product runs turn it off to reach the runs' loops; nothing else should.
MATRIX_STAGE = True

# Every op of micrograd._ops.OPS (micrograd._engine checks that _kernels.h has exactly those).
SUPPORTED_CODES = frozenset(range(MG_N_OPS))

cdef enum:
    NO_ERROR = -1

# PAIR_MUL, PAIR_ADD (a mul whose result the next node, an add, takes, run as one step: eager
# mode runs these as two nodes; here they run back to back with the same operations in the same
# order, only without a dispatch between them and with the running sum kept in a register, see
# _run_forward), DOT_HEAD and DOT_TAIL (the first and last node of a dot product run, see
# _fuse_dots: forward runs the whole run at its head, backward at its tail) are in
# _schedule.pxd. Never shown: _structure() reports them as MUL and ADD.
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


# Growing arrays during capture: _schedule's grow_array (doubling; realloc moves large blocks by
# remapping, not copying), which the planner uses too.


cdef inline int32_t _resolve(int32_t position, Py_ssize_t n_leaves) noexcept:
    """The slot of a node numbered during capture: leaf k was -1-k, interior node m was m."""
    return <int32_t>(-1 - position) if position < 0 else <int32_t>(n_leaves + position)


# ---------------------------------------------------------------------------------------------
# Dot products: runs of the tape that eager mode builds as sum(w*x, start), for instance
#   ((b + w0*x0) + w1*x1) + w2*x2   (Karpathy's Neuron: sum((wi*xi ...), self.b))
# laid out by capture as  mul, add, mul, add, ...  (each product right before the add that takes
# it). A run is kept when every product and every partial sum but the last has no other reader
# (no other node, not an output): replay then keeps the running sum in a register and stores
# only the last sum, and backward, which needs no add's value and no product's, adds each
# term's contributions straight into its operands' grads. The operations and their order are
# eager mode's, so are the bits.

cdef enum:
    STANDALONE = 0  # replayed alone
    LEADER = 1      # the first run of a group: replays its group's runs together
    MEMBER = 2      # another run of a group: skipped where it stands
    SHARED_X = 3    # (the role of a group's first lane in group_runs) all runs read one x
    PART = 4        # a run whose sum the next run of its chain continues: skipped where it stands
    DROPPED = 5     # (during _fuse_dots) a lone one-term run, left to the pair loop
    GROUP_LANES = 4
    MAX_BETWEEN = 64  # nodes between two runs of a group (_can_group reads each of them)
    # The most nodes a chain's runs may span. A chain replays its terms in one place, reading
    # (and, backward, writing) slots spread over its span: within a few thousand nodes they
    # are still in cache; beyond, the misses cost more than the dispatch the chain saves.
    MAX_CHAIN_SPAN = 512

ctypedef struct Run:
    int32_t head         # tape index of the first product (the run's last add is head + 2n - 1)
    int32_t n            # terms (products)
    int32_t start        # slot of the sum's first operand that is not a product of the run
    uint8_t start_first  # the first add is start + product (else product + start)
    uint8_t role         # STANDALONE, LEADER or MEMBER
    uint8_t lanes        # (in group_runs, the first lane's copy) how many runs the group has
    int32_t group        # LEADER, MEMBER: the group's index (its lanes: group_runs[GROUP_LANES*group:]);
                         # STANDALONE: the index of the chain it ends


# Chain (a sum of products replayed by one loop where its last run stands: one run, or runs of
# which each continues the sum of the one before, with other nodes between them, as the first
# neuron of a layer, whose inputs capture records between its products) is in _schedule.pxd.


cdef inline double _chain_forward(const double *data, const int32_t *ta, const int32_t *tb,
                                  const Chain *c) noexcept nogil:
    """The chain's sum, as eager mode adds it (products in their operand order)."""
    cdef Py_ssize_t t = c.first, end = c.first + c.n
    cdef double m = mg_mul(data[ta[t]], data[tb[t]])
    cdef double acc = mg_add(data[c.start], m) if c.start_first else mg_add(m, data[c.start])
    t += 1
    while t < end:
        acc = mg_add(acc, mg_mul(data[ta[t]], data[tb[t]]))
        t += 1
    return acc


cdef inline void _run_forward_group(double *data, const int32_t *a, const int32_t *b,
                                    const Run *r, Py_ssize_t n_leaves) noexcept nogil:
    """GROUP_LANES runs of equal length side by side: four independent running sums, each
    adding its own terms in its own order (so each is bit for bit the one-run loop's)."""
    cdef Py_ssize_t j0 = r[0].head, j1 = r[1].head, j2 = r[2].head, j3 = r[3].head
    cdef Py_ssize_t k, n = r[0].n
    cdef double s0 = mg_mul(data[a[j0]], data[b[j0]])
    cdef double s1 = mg_mul(data[a[j1]], data[b[j1]])
    cdef double s2 = mg_mul(data[a[j2]], data[b[j2]])
    cdef double s3 = mg_mul(data[a[j3]], data[b[j3]])
    s0 = mg_add(data[r[0].start], s0) if r[0].start_first else mg_add(s0, data[r[0].start])
    s1 = mg_add(data[r[1].start], s1) if r[1].start_first else mg_add(s1, data[r[1].start])
    s2 = mg_add(data[r[2].start], s2) if r[2].start_first else mg_add(s2, data[r[2].start])
    s3 = mg_add(data[r[3].start], s3) if r[3].start_first else mg_add(s3, data[r[3].start])
    for k in range(1, n):
        s0 = mg_add(s0, mg_mul(data[a[j0 + 2 * k]], data[b[j0 + 2 * k]]))
        s1 = mg_add(s1, mg_mul(data[a[j1 + 2 * k]], data[b[j1 + 2 * k]]))
        s2 = mg_add(s2, mg_mul(data[a[j2 + 2 * k]], data[b[j2 + 2 * k]]))
        s3 = mg_add(s3, mg_mul(data[a[j3 + 2 * k]], data[b[j3 + 2 * k]]))
    data[n_leaves + j0 + 2 * n - 1] = s0
    data[n_leaves + j1 + 2 * n - 1] = s1
    data[n_leaves + j2 + 2 * n - 1] = s2
    data[n_leaves + j3 + 2 * n - 1] = s3


cdef inline void _term_backward(const double *data, double *grad, const int32_t *a,
                                const int32_t *b, Py_ssize_t j, double g) noexcept nogil:
    """A product's backward (mg_backward's mul): grad[a] += b * g, then grad[b] += a * g."""
    cdef int32_t ia = a[j], ib = b[j]
    grad[ia] += data[ib] * g
    grad[ib] += data[ia] * g


cdef inline void _chain_backward(const double *data, double *grad, const int32_t *ta,
                                 const int32_t *tb, const Chain *c, double top) noexcept nogil:
    """The chain's backward in eager's order, top being its last sum's grad: terms n-1 .. 1,
    the start, term 0. Every partial sum and product gets top plus the 0.0 its grad started
    from (0.0 + top, which differs from top only for -0.0), as eager mode's adds pass it down;
    the start gets what the first add got. Each term is mg_backward's mul: grad[a] += b * g,
    then grad[b] += a * g."""
    cdef Py_ssize_t t = c.first + c.n - 1
    cdef double g = 0.0 + top, m
    cdef int32_t ia, ib
    while t > c.first:
        ia = ta[t]
        ib = tb[t]
        if ia == ib:  # x*x (an L2 penalty's p*p): both additions in a register, in order
            m = data[ia] * g
            grad[ia] = (grad[ia] + m) + m
        else:
            grad[ia] += data[ib] * g
            grad[ib] += data[ia] * g
        t -= 1
    grad[c.start] += g if c.n > 1 else top
    ia = ta[t]
    ib = tb[t]
    grad[ia] += data[ib] * g
    grad[ib] += data[ia] * g


cdef inline void _run_backward_group(const double *data, double *grad, const int32_t *a,
                                     const int32_t *b, const Run *r, Py_ssize_t n_leaves) noexcept nogil:
    """A group's backward: term k of runs 3, 2, 1, 0 (eager meets the later run first), k from
    n-1 down; then the starts; then the terms 0. _fuse_dots groups runs only where a slot
    receives contributions from one term index (or one start) alone, so each grad receives
    its contributions in eager's order."""
    cdef Py_ssize_t k, n = r[0].n, l
    cdef Py_ssize_t j0 = r[0].head, j1 = r[1].head, j2 = r[2].head, j3 = r[3].head
    cdef double t0 = grad[n_leaves + j0 + 2 * n - 1], t1 = grad[n_leaves + j1 + 2 * n - 1]
    cdef double t2 = grad[n_leaves + j2 + 2 * n - 1], t3 = grad[n_leaves + j3 + 2 * n - 1]
    cdef double g0 = 0.0 + t0, g1 = 0.0 + t1, g2 = 0.0 + t2, g3 = 0.0 + t3
    grad[n_leaves + j0 + 2 * n - 1] = 0.0  # cleared for the next pass (see _run_backward)
    grad[n_leaves + j1 + 2 * n - 1] = 0.0
    grad[n_leaves + j2 + 2 * n - 1] = 0.0
    grad[n_leaves + j3 + 2 * n - 1] = 0.0
    for k in range(n - 1, 0, -1):
        _term_backward(data, grad, a, b, j3 + 2 * k, g3)
        _term_backward(data, grad, a, b, j2 + 2 * k, g2)
        _term_backward(data, grad, a, b, j1 + 2 * k, g1)
        _term_backward(data, grad, a, b, j0 + 2 * k, g0)
    if n > 1:
        t0, t1, t2, t3 = g0, g1, g2, g3
    grad[r[3].start] += t3
    grad[r[2].start] += t2
    grad[r[1].start] += t1
    grad[r[0].start] += t0
    _term_backward(data, grad, a, b, j3, g3)
    _term_backward(data, grad, a, b, j2, g2)
    _term_backward(data, grad, a, b, j1, g1)
    _term_backward(data, grad, a, b, j0, g0)


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
    cdef int32_t *read_slots    # n_reads leaves forward reads: all but the constants
    cdef int32_t *grad_slots    # n_grads leaves backward adds grads into: the params
    cdef Py_ssize_t n_reads, n_grads
    cdef int32_t *output_slots  # n_outputs
    cdef Run *runs              # n_runs dot products, in tape order (see _fuse_dots)
    cdef Run *group_runs        # GROUP_LANES runs per group, the leader first
    cdef Chain *chains          # n_chains, one per run replayed alone (STANDALONE)
    cdef int32_t *ta            # the chains' terms' operand slots, n_terms each
    cdef int32_t *tb
    cdef Py_ssize_t n_chains, n_terms
    cdef Py_ssize_t n_runs, n_groups
    cdef MatrixPlan plan        # the matrix stage's replay, when it found grids (plan.n_steps > 0)
    cdef double *work           # plan.workspace doubles: the grids' gathered operands
    cdef Py_ssize_t root_slot   # the root's slot in data (the last, or the plan's)
    cdef Py_ssize_t n_forward, n_backward  # the plan's programs' steps, once grids took their activations
    cdef uint8_t *group_act     # per grid: the op of the activation it runs on its sums (0: none)
    cdef uint8_t *group_flags   # per grid: NEED_W, NEED_X, FIXED_X (see _find_grid_flags)
    cdef double *operands       # per grid, its weights then its inputs, as forward gathered them
    cdef int64_t *operand_at    # per grid, where its operands start in `operands`
    cdef bint operands_fresh    # `operands` holds what data holds (backward then skips gathering)
    cdef int32_t **act_slots    # per grid with one: its activations' slots, in its sums' order
    cdef int32_t *replay_outputs  # the outputs' slots in data (output_slots, or the plan's)
    cdef Value _root
    cdef tuple _outputs
    cdef bint captured          # __init__ finished: every array matches its count
    cdef bint complete          # data holds a whole forward pass (False after a failed one)
    cdef bint busy              # a replay is running (the GIL is released during it)

    def __init__(self, Value root not None, *, outputs=(), params=None, constants=()):
        if self._root is not None:
            raise TypeError("CompiledTape.__init__ cannot be called twice")
        self._outputs = _api.check_outputs(outputs, Value)
        self._root = root
        self._capture(root)
        reads, grads = _api.leaf_roles(self.leaves, params, constants, Value)
        self._set_leaf_roles(reads, grads)  # before planning: grids skip what no leaf needs
        self.root_slot = self.n_leaves + self.n_interior - 1
        self.replay_outputs = self.output_slots
        if MATRIX_STAGE and plan_matrices(&self.plan, self.n_leaves, self.n_interior, self.code, self.a,
                                          self.b, self.output_slots, self.n_outputs, self.data):
            self._adopt_plan()
        else:
            self._fuse_dots()
        self.captured = True  # only now may the arrays be read (a failed capture leaves gaps)
        self.complete = True  # a fresh tape holds the captured graph's values

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self.leaf_refs != NULL:
            for i in range(self.n_leaves):
                Py_DECREF(<object>self.leaf_refs[i])
        free(self.leaf_refs)
        free(self.read_slots)
        free(self.grad_slots)
        free(self.data)
        free(self.grad)
        free(self.code)
        free(self.a)
        free(self.b)
        free(self.consts)
        free(self.output_slots)
        free(self.runs)
        free(self.group_runs)
        free(self.chains)
        free(self.ta)
        free(self.tb)
        if self.act_slots != NULL:
            for i in range(self.plan.n_groups):
                free(self.act_slots[i])
        free(self.act_slots)
        free(self.group_act)
        free(self.group_flags)
        free(self.operands)
        free(self.operand_at)
        free_plan(&self.plan)
        free(self.work)

    cdef int _adopt_plan(self) except -1:
        """Replay by the matrix plan: data and grad become its slots (see MatrixPlan)."""
        self.work = <double *>malloc(max(self.plan.workspace, 1) * sizeof(double))
        cdef double *grad = <double *>calloc(max(self.plan.n_live, 1), sizeof(double))
        if self.work == NULL or grad == NULL:
            free(grad)
            raise MemoryError("Tape: out of memory capturing the graph")
        free(self.data)
        free(self.grad)
        self.data = self.plan.data
        self.plan.data = NULL
        self.grad = grad
        self.root_slot = self.plan.root
        self.replay_outputs = self.plan.output_slots
        self.n_forward = self.n_backward = self.plan.n_steps
        self._absorb_activations()
        self._make_operand_buffers()
        self._find_grid_flags()
        return 0

    cdef int _set_leaf_roles(self, object reads, object grads) except -1:
        """read_slots and grad_slots from micrograd.tape.leaf_roles' sequences."""
        cdef Py_ssize_t i
        self.read_slots = <int32_t *>malloc(max(len(reads), 1) * sizeof(int32_t))
        self.grad_slots = <int32_t *>malloc(max(len(grads), 1) * sizeof(int32_t))
        if self.read_slots == NULL or self.grad_slots == NULL:
            raise MemoryError("Tape: out of memory capturing the graph")
        for i in range(len(reads)):
            self.read_slots[i] = reads[i]
        self.n_reads = len(reads)
        for i in range(len(grads)):
            self.grad_slots[i] = grads[i]
        self.n_grads = len(grads)
        return 0

    cdef int _find_grid_flags(self) except -1:
        """What each grid needs. NEED_W, NEED_X: some weight (input) needs its grad: a computed
        slot always does (its grad flows on), a leaf only if backward writes its grad. A grid
        none of whose inputs need one skips that kernel (a dataset's grads, when only the
        parameters' are wanted). FIXED_X: every input is a constant leaf (see Tape), so the
        inputs are gathered once, here, and never again."""
        cdef const MatrixPlan *p = &self.plan
        cdef Py_ssize_t g, i, n
        cdef const int32_t *x
        cdef uint8_t *role = <uint8_t *>calloc(max(self.n_leaves, 1), sizeof(uint8_t))
        self.group_flags = <uint8_t *>calloc(max(p.n_groups, 1), sizeof(uint8_t))
        if role == NULL or self.group_flags == NULL:
            free(role)
            raise MemoryError("Tape: out of memory capturing the graph")
        for i in range(self.n_grads):
            role[self.grad_slots[i]] |= WANTS_GRAD
        for i in range(self.n_reads):
            role[self.read_slots[i]] |= READ
        for g in range(p.n_groups):
            x = p.slots + p.groups[g].x
            n = <Py_ssize_t>p.groups[g].C * p.groups[g].K
            if _any_leaf_is(p.slots + p.groups[g].w, <Py_ssize_t>p.groups[g].R * p.groups[g].K,
                            role, WANTS_GRAD, self.n_leaves):
                self.group_flags[g] |= NEED_W
            if _any_leaf_is(x, n, role, WANTS_GRAD, self.n_leaves):
                self.group_flags[g] |= NEED_X
            if not _any_leaf_is(x, n, role, READ, self.n_leaves):
                self.group_flags[g] |= FIXED_X
                _gather(self.operands + self.operand_at[g] + <Py_ssize_t>p.groups[g].R * p.groups[g].K,
                        self.data, x, n)
        free(role)
        return 0

    cdef int _make_operand_buffers(self) except -1:
        """A buffer per grid for the weights and inputs forward gathers: backward reads them
        there instead of gathering them again (data does not change between the two)."""
        cdef const MatrixPlan *p = &self.plan
        cdef Py_ssize_t g, total = 0
        self.operand_at = <int64_t *>malloc(max(p.n_groups, 1) * sizeof(int64_t))
        if self.operand_at == NULL:
            raise MemoryError("Tape: out of memory capturing the graph")
        for g in range(p.n_groups):
            self.operand_at[g] = total
            total += (<Py_ssize_t>p.groups[g].R + p.groups[g].C) * p.groups[g].K
        self.operands = <double *>malloc(max(total, 1) * sizeof(double))
        if self.operands == NULL:
            raise MemoryError("Tape: out of memory capturing the graph")
        self.operands_fresh = False  # the captured values are in data only
        return 0

    cdef int _absorb_activations(self) except -1:
        """Let each grid run its layer's activation (relu, tanh) as part of its step, where
        every one of its sums is read by one such node and nothing else: forward, right after
        the sums; backward, right before reading the sums' grads. No node step then runs per
        activation. Moving them changes no bits: an activation can neither fail nor meet
        another writer of its grads (its sum is read by it alone, and its own grad is complete
        when its first place in the plan comes, so it still is at the grid's, later)."""
        cdef MatrixPlan *p = &self.plan
        cdef Py_ssize_t i, g, r, n = p.n_live
        cdef int32_t *readers = <int32_t *>calloc(max(n, 1), sizeof(int32_t))
        cdef int32_t *reader = <int32_t *>malloc(max(n, 1) * sizeof(int32_t))
        cdef uint8_t *absorbed = <uint8_t *>calloc(max(p.n_nodes, 1), sizeof(uint8_t))
        cdef uint8_t c
        cdef const int32_t *o
        try:
            if readers == NULL or reader == NULL or absorbed == NULL:
                raise MemoryError("Tape: out of memory capturing the graph")
            self.group_act = <uint8_t *>calloc(max(p.n_groups, 1), sizeof(uint8_t))
            self.act_slots = <int32_t **>calloc(max(p.n_groups, 1), sizeof(int32_t *))
            if self.group_act == NULL or self.act_slots == NULL:
                raise MemoryError("Tape: out of memory capturing the graph")
            self._count_readers(readers, reader)
            for g in range(p.n_groups):
                o = p.slots + p.groups[g].o
                c = 0
                for i in range(p.groups[g].R * p.groups[g].C):
                    r = reader[o[i]]
                    if readers[o[i]] != 1 or r < 0:
                        break
                    if i == 0:
                        c = _op_of(p.node_code[r])
                    if _op_of(p.node_code[r]) != c or (c != MG_RELU and c != MG_TANH):
                        break
                else:
                    self._absorb(g, c, reader, absorbed)
            self.n_forward = _drop_steps(p.forward, p.n_steps, absorbed)
            self.n_backward = _drop_steps(p.backward, p.n_steps, absorbed)
        finally:
            free(readers)
            free(reader)
            free(absorbed)
        return 0

    cdef void _count_readers(self, int32_t *readers, int32_t *reader) noexcept:
        """readers[slot]: how many operands, outputs and the root read it; reader[slot]: the
        node step that reads it, if one does (-1: a chain, a grid, an output or the root)."""
        cdef const MatrixPlan *p = &self.plan
        cdef Py_ssize_t i, t
        for i in range(p.n_live):
            reader[i] = -1
        for i in range(p.n_nodes):
            readers[p.node_a[i]] += 1
            reader[p.node_a[i]] = <int32_t>i
            if mg_arity(_op_of(p.node_code[i])) == 2:
                readers[p.node_b[i]] += 1
        for i in range(p.n_chains):
            readers[p.chains[i].start] += 1
            for t in range(p.chains[i].first, p.chains[i].first + p.chains[i].n):
                readers[p.ta[t]] += 1
                readers[p.tb[t]] += 1
        for i in range(p.n_groups):
            for t in range(p.groups[i].w, p.groups[i].o):  # weights, inputs, starts
                readers[p.slots[t]] += 1
        for i in range(self.n_outputs):
            readers[p.output_slots[i]] += 1
        readers[p.root] += 1

    cdef int _absorb(self, Py_ssize_t g, uint8_t c, const int32_t *reader,
                     uint8_t *absorbed) except -1:
        cdef const MatrixPlan *p = &self.plan
        cdef Py_ssize_t i, n = p.groups[g].R * p.groups[g].C
        cdef const int32_t *o = p.slots + p.groups[g].o
        self.act_slots[g] = <int32_t *>malloc(max(n, 1) * sizeof(int32_t))
        if self.act_slots[g] == NULL:
            raise MemoryError("Tape: out of memory capturing the graph")
        for i in range(n):
            self.act_slots[g][i] = p.node_out[reader[o[i]]]
            absorbed[reader[o[i]]] = True
        self.group_act[g] = c
        return 0

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
            grow_array(<void **>&w.stack, w.stack_cap, sizeof(Frame))
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
                        grow_array(<void **>&self.leaf_refs, w.leaf_cap, sizeof(PyObject *))
                    Py_INCREF(<object>child)
                    self.leaf_refs[self.n_leaves] = child
                    _put(child, stamp, <int32_t>(-1 - self.n_leaves))
                    self.n_leaves += 1
                else:  # an interior node: descend
                    if w.depth == w.stack_cap:
                        w.stack_cap *= 2
                        grow_array(<void **>&w.stack, w.stack_cap, sizeof(Frame))
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
                grow_array(<void **>&w.nodes, w.interior_cap, sizeof(PyObject *))
                grow_array(<void **>&self.code, w.interior_cap, sizeof(uint8_t))
                grow_array(<void **>&self.a, w.interior_cap, sizeof(int32_t))
                grow_array(<void **>&self.b, w.interior_cap, sizeof(int32_t))
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
            grow_array(<void **>&self.consts, self.n_consts + 16, sizeof(double))
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

    # -- dot products (after capture: a pass over the recorded arrays) -------------------------
    cdef int _fuse_dots(self) except -1:
        """Find the dot product runs (see Run), mark their first and last nodes, and group runs
        of equal length that _can_group accepts, GROUP_LANES at a time."""
        cdef Py_ssize_t n_slots = self.n_leaves + self.n_interior
        cdef uint8_t *uses = <uint8_t *>calloc(max(n_slots, 1), sizeof(uint8_t))
        cdef int32_t *stamp = NULL
        cdef int32_t *key = NULL
        cdef Py_ssize_t cap = 0, r, j, k
        cdef Py_ssize_t lanes[GROUP_LANES]
        cdef Py_ssize_t n_lanes
        cdef bint shared
        try:
            if uses == NULL:
                raise MemoryError("Tape: out of memory capturing the graph")
            self._count_uses(uses)
            grow_array(<void **>&self.runs, 1, sizeof(Run))
            j = 0
            while j + 1 < self.n_interior:  # count the runs first: the array takes its size
                if self._find_run(uses, j, self.runs):
                    j += 2 * self.runs[0].n
                    cap += 1
                else:
                    j += 1
            grow_array(<void **>&self.runs, cap, sizeof(Run))
            j = 0
            while j + 1 < self.n_interior:
                if self._find_run(uses, j, &self.runs[self.n_runs]):
                    j += 2 * self.runs[self.n_runs].n
                    self.n_runs += 1
                else:
                    j += 1
            for r in range(self.n_runs):  # the run's nodes: plain codes inside, marks at the ends
                j = self.runs[r].head
                for k in range(j, j + 2 * self.runs[r].n, 2):
                    self.code[k] = MG_MUL
                    self.code[k + 1] = MG_ADD
                self.code[j] = DOT_HEAD
                self.code[j + 2 * self.runs[r].n - 1] = DOT_TAIL
            stamp = <int32_t *>calloc(max(n_slots, 1), sizeof(int32_t))
            key = <int32_t *>malloc(max(n_slots, 1) * sizeof(int32_t))
            if stamp == NULL or key == NULL:
                raise MemoryError("Tape: out of memory capturing the graph")
            r = 0
            while r < self.n_runs:  # groups never overlap: the next starts after the last lane
                n_lanes = self._pick_lanes(r, lanes)
                if n_lanes >= 2 and self._can_group(lanes, n_lanes, stamp, key, <int32_t>(r + 1)):
                    shared = self._shares_x(lanes, n_lanes, stamp, <int32_t>(r + 1))
                    if shared or n_lanes == GROUP_LANES:  # fewer lanes: the shared kernel only
                        self._add_group(lanes, n_lanes, shared)
                        r = lanes[n_lanes - 1]
                r += 1
            for j in range(n_slots):
                key[j] = -1
            for r in range(self.n_runs):  # key becomes: slot -> the run that starts from it
                key[self.runs[r].start] = <int32_t>r
            self._make_chains(uses, stamp, key, <int32_t>(self.n_runs + 1))
            self._drop_runs()
        finally:
            free(uses)
            free(stamp)
            free(key)
        return 0

    cdef int _make_chains(self, const uint8_t *uses, int32_t *stamp, const int32_t *run_from,
                          int32_t mark) except -1:
        """Give each run that is not in a group a chain (see Chain): its own terms, continued
        by the run that takes its sum as start where _continuation allows, and so on. The
        runs of a chain but the last become PART. Marks from `mark` on, one per chain."""
        cdef Py_ssize_t r, q, last, k, j, chain_cap = 0, term_cap = 0
        cdef Py_ssize_t budget = 8 * (self.n_leaves + self.n_interior) + 4096  # linear time
        cdef Chain *chain
        for r in range(self.n_runs):
            if self.runs[r].role != STANDALONE or self.runs[r].group != -1:
                continue  # in a group, or already the end of a chain
            if self.n_chains == chain_cap:
                chain_cap = max(64, 2 * chain_cap)
                grow_array(<void **>&self.chains, chain_cap, sizeof(Chain))
            chain = &self.chains[self.n_chains]
            chain.first = <int32_t>self.n_terms
            chain.start = self.runs[r].start
            chain.start_first = self.runs[r].start_first
            stamp[chain.start] = mark
            last = r
            while True:
                if self.n_terms + self.runs[last].n > term_cap:
                    term_cap = max(256, 2 * term_cap, self.n_terms + self.runs[last].n)
                    grow_array(<void **>&self.ta, term_cap, sizeof(int32_t))
                    grow_array(<void **>&self.tb, term_cap, sizeof(int32_t))
                for k in range(self.runs[last].n):  # the terms of run `last`
                    j = self.runs[last].head + 2 * k
                    self.ta[self.n_terms] = self.a[j]
                    self.tb[self.n_terms] = self.b[j]
                    stamp[self.a[j]] = mark
                    stamp[self.b[j]] = mark
                    self.n_terms += 1
                q = self._continuation(last, uses, stamp, run_from, mark, &budget)
                if q < 0 or self.runs[q].head + 2 * self.runs[q].n - self.runs[r].head > MAX_CHAIN_SPAN:
                    break
                self.runs[last].role = PART
                last = q
            chain.n = <int32_t>(self.n_terms - chain.first)
            mark += 1
            if last == r and chain.n == 1:  # one product and one add: the pair loop does as well
                self.runs[r].role = DROPPED
                self.n_terms -= 1
                continue
            self.runs[last].group = <int32_t>self.n_chains
            self.n_chains += 1
        return 0

    cdef int _drop_runs(self) except -1:
        """Give the DROPPED runs back to the pair loop (their codes as _mark_pairs left them)
        and trim the arrays to what remains."""
        cdef Py_ssize_t r, kept = 0
        for r in range(self.n_runs):
            if self.runs[r].role == DROPPED:
                self.code[self.runs[r].head] = PAIR_MUL
                self.code[self.runs[r].head + 1] = PAIR_ADD
            else:
                self.runs[kept] = self.runs[r]
                kept += 1
        self.n_runs = kept
        grow_array(<void **>&self.runs, self.n_runs, sizeof(Run))
        grow_array(<void **>&self.chains, self.n_chains, sizeof(Chain))
        grow_array(<void **>&self.ta, self.n_terms, sizeof(int32_t))
        grow_array(<void **>&self.tb, self.n_terms, sizeof(int32_t))
        return 0

    cdef Py_ssize_t _continuation(self, Py_ssize_t r, const uint8_t *uses, const int32_t *stamp,
                                  const int32_t *run_from, int32_t mark,
                                  Py_ssize_t *budget) noexcept:
        """The run that continues run r's chain (marked `mark` in stamp), or -1. It must take
        r's sum, read by nothing else, as its start, on the left (acc + product); and the nodes
        between them must add into none of the chain's slots: the chain replays forward where
        its last run stands (after those nodes) and backward there too (before them), so only
        their order against the chain's contributions changes, and this keeps it harmless.
        A group with a run between them replays backward at its first run, so all its runs'
        contributions (some may stand past q) move to a place between them: none of its runs
        may add into the chain's slots either."""
        cdef Py_ssize_t tail = self.runs[r].head + 2 * self.runs[r].n - 1, q, j, p, l, k
        cdef const Run *lane
        cdef int32_t top = <int32_t>(self.n_leaves + tail)
        q = run_from[top]
        if (uses[top] != 1 or q <= r or self.runs[q].role != STANDALONE
                or self.runs[q].group != -1 or not self.runs[q].start_first):
            return -1
        for j in range(tail + 1, self.runs[q].head):
            budget[0] -= 1
            if budget[0] < 0 or stamp[self.a[j]] == mark:
                return -1
            if mg_arity(_op_of(self.code[j])) == 2 and stamp[self.b[j]] == mark:
                return -1
        for p in range(r + 1, q):
            if self.runs[p].role != LEADER and self.runs[p].role != MEMBER:
                continue
            lane = self.group_runs + GROUP_LANES * self.runs[p].group
            for l in range(lane[0].lanes):
                budget[0] -= 2 * lane[l].n + 1
                if budget[0] < 0 or stamp[lane[l].start] == mark:
                    return -1
                for k in range(lane[l].head, lane[l].head + 2 * lane[l].n, 2):
                    if stamp[self.a[k]] == mark or stamp[self.b[k]] == mark:
                        return -1
        return q

    cdef int _add_group(self, const Py_ssize_t *lanes, Py_ssize_t n_lanes, bint shared) except -1:
        """Make lanes[0] the leader of a new group (its lanes copied to group_runs) and the
        other lanes its members."""
        cdef Py_ssize_t l
        cdef Run *first
        if self.n_groups % 64 == 0:
            grow_array(<void **>&self.group_runs, (self.n_groups + 64) * GROUP_LANES, sizeof(Run))
        for l in range(n_lanes):
            self.runs[lanes[l]].role = MEMBER
            self.runs[lanes[l]].group = <int32_t>self.n_groups  # _continuation finds the lanes
        self.runs[lanes[0]].role = LEADER
        self.runs[lanes[0]].group = <int32_t>self.n_groups
        for l in range(n_lanes):
            self.group_runs[self.n_groups * GROUP_LANES + l] = self.runs[lanes[l]]
        first = &self.group_runs[self.n_groups * GROUP_LANES]
        first.lanes = <uint8_t>n_lanes
        first.role = SHARED_X if shared else LEADER
        self.n_groups += 1
        return 0

    cdef void _count_uses(self, uint8_t *uses) noexcept:
        """How many times each slot is read (by a node or as an output), saturating at 255."""
        cdef Py_ssize_t j, s
        cdef uint8_t c
        for j in range(self.n_interior):
            c = _op_of(self.code[j])
            uses[self.a[j]] = min(uses[self.a[j]] + 1, 255)
            if mg_arity(c) == 2:
                uses[self.b[j]] = min(uses[self.b[j]] + 1, 255)
        for j in range(self.n_outputs):
            s = self.output_slots[j]
            uses[s] = min(uses[s] + 1, 255)

    cdef bint _find_run(self, const uint8_t *uses, Py_ssize_t j, Run *run) noexcept:
        """Whether a run starts at tape index j (a product read once, by the add after it); if
        so, fill run in with it, as long as it goes."""
        cdef int32_t m = <int32_t>(self.n_leaves + j), add_a = self.a[j + 1], add_b = self.b[j + 1]
        cdef Py_ssize_t n = 1, k
        if (_op_of(self.code[j]) != MG_MUL or _op_of(self.code[j + 1]) != MG_ADD or uses[m] != 1
                or (add_a != m and add_b != m)):
            return False
        run.head = <int32_t>j
        run.start_first = add_a != m
        run.start = add_a if add_a != m else add_b
        run.role = STANDALONE
        run.group = -1
        k = j + 2
        while (k + 1 < self.n_interior and _op_of(self.code[k]) == MG_MUL
               and _op_of(self.code[k + 1]) == MG_ADD
               and uses[self.n_leaves + k] == 1 and uses[self.n_leaves + k - 1] == 1
               and self.a[k + 1] == self.n_leaves + k - 1 and self.b[k + 1] == self.n_leaves + k
               and n < 2**30):
            n += 1
            k += 2
        run.n = <int32_t>n
        return True

    cdef Py_ssize_t _pick_lanes(self, Py_ssize_t r, Py_ssize_t *lanes) noexcept:
        """lanes = r and the next standalone runs of run r's length, up to GROUP_LANES, each
        close to the one before (at most MAX_BETWEEN nodes between them); how many it found."""
        cdef Py_ssize_t l = 1, q = r + 1, n = self.runs[r].n
        lanes[0] = r
        while l < GROUP_LANES and q < self.n_runs:
            if self.runs[q].head - (self.runs[lanes[l - 1]].head + 2 * n) > MAX_BETWEEN:
                break
            if self.runs[q].n == n and self.runs[q].role == STANDALONE:
                lanes[l] = q
                l += 1
            q += 1
        return l

    cdef bint _can_group(self, const Py_ssize_t *lanes, Py_ssize_t n_lanes, int32_t *stamp,
                         int32_t *key, int32_t mark) noexcept:
        """Whether these runs can replay side by side with eager's bits:
        - every operand is computed before the first run starts (forward runs the group there,
          before the nodes between the runs);
        - each slot they add grads into is met at one term index only (or is one run's start),
          so the group's loop gives it its contributions in eager's order;
        - the nodes between the runs add into none of those slots (backward runs the group at
          the first run, after those nodes have run)."""
        cdef Py_ssize_t first = self.n_leaves + self.runs[lanes[0]].head, n = self.runs[lanes[0]].n
        cdef Py_ssize_t l, k, j, q, last
        cdef Run *run
        for l in range(n_lanes):
            run = &self.runs[lanes[l]]
            if run.start >= first or stamp[run.start] == mark:
                return False
            stamp[run.start] = mark
            key[run.start] = -1
        for l in range(n_lanes):
            for k in range(n):
                j = self.runs[lanes[l]].head + 2 * k
                if (not _claim(self.a[j], first, stamp, key, mark, <int32_t>k)
                        or not _claim(self.b[j], first, stamp, key, mark, <int32_t>k)):
                    return False
        j = self.runs[lanes[0]].head + 2 * n
        last = self.runs[lanes[n_lanes - 1]].head
        q = lanes[0] + 1
        while j < last:  # the nodes between the runs
            if self.code[j] == DOT_HEAD:  # a run: its products' operands and its start
                run = &self.runs[q]
                q += 1
                j = run.head + 2 * run.n
                if _is_lane(q - 1, lanes, n_lanes):
                    continue
                if stamp[run.start] == mark:
                    return False
                for k in range(run.head, run.head + 2 * run.n, 2):
                    if stamp[self.a[k]] == mark or stamp[self.b[k]] == mark:
                        return False
                continue
            if stamp[self.a[j]] == mark:
                return False
            if mg_arity(_op_of(self.code[j])) == 2 and stamp[self.b[j]] == mark:
                return False
            j += 1
        return True

    cdef bint _shares_x(self, const Py_ssize_t *lanes, Py_ssize_t n_lanes, int32_t *stamp,
                        int32_t mark) noexcept:
        """After _can_group accepted the lanes: whether, at every term index, all the runs'
        products have one second operand x (many neurons over one input), and no first
        operand (a weight) is an x. Then _run_backward_shared may keep the grad of x in a
        register across the runs: nothing else writes it meanwhile."""
        cdef Py_ssize_t l, k, n = self.runs[lanes[0]].n
        cdef int32_t x
        for k in range(n):
            x = self.b[self.runs[lanes[0]].head + 2 * k]
            for l in range(1, n_lanes):
                if self.b[self.runs[lanes[l]].head + 2 * k] != x:
                    return False
            stamp[x] = -mark
        for l in range(n_lanes):
            for k in range(n):
                if stamp[self.a[self.runs[lanes[l]].head + 2 * k]] == -mark:
                    return False
        return True

    cdef int _find_outputs(self, Walk *w) except -1:
        """Each output's slot, read from its mark: WALK_OK, or WALK_NO_OUTPUT (Walk.missing)."""
        cdef Py_ssize_t i
        cdef PyObject *out
        grow_array(<void **>&self.output_slots, len(self._outputs), sizeof(int32_t))
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
        grow_array(<void **>&w.nodes, n, sizeof(double))
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
        grow_array(<void **>&self.code, self.n_interior, sizeof(uint8_t))
        grow_array(<void **>&self.a, self.n_interior, sizeof(int32_t))
        grow_array(<void **>&self.b, self.n_interior, sizeof(int32_t))
        grow_array(<void **>&self.leaf_refs, self.n_leaves, sizeof(PyObject *))
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
        self._enter("forward")
        try:
            for i in range(self.n_reads):  # a constant's slot keeps what capture read
                self.data[self.read_slots[i]] = (<Value>self.leaf_refs[self.read_slots[i]])._data
            self.complete = False
            with nogil:
                if self.plan.n_steps:
                    self.operands_fresh = False
                    failed = self._run_planned_forward()
                    self.operands_fresh = failed == NO_ERROR
                else:
                    failed = self._run_forward()
            if failed != NO_ERROR:
                if self.plan.n_steps:  # the plan's order is not eager's: find eager's first error
                    self._raise_plain_forward_error()
                    raise RuntimeError("Tape: a planned forward failed where the plain one does not")
                self._raise_forward_error(failed)
            self.complete = True
            self._root._data = self.data[self.root_slot]
            for i in range(self.n_outputs):
                (<Value>self._outputs[i])._data = self.data[self.replay_outputs[i]]
            return self.data[self.root_slot]
        finally:
            self.busy = False

    def backward(self):
        """Accumulate d(root)/d(leaf) into every leaf's .grad (root's grad set to 1)."""
        cdef Py_ssize_t i, failed
        self._enter("backward")  # first: a forward running in another thread is not a failed one
        try:
            if not self.complete:
                raise _api.not_replayable()
            # the slots of leaves without grads get contributions too, and are never read
            for i in range(self.n_grads):
                self.grad[self.grad_slots[i]] = (<Value>self.leaf_refs[self.grad_slots[i]])._grad
            with nogil:
                if self.plan.n_steps:
                    failed = self._run_planned_backward()
                    self.operands_fresh = True  # backward gathered them where forward had not
                else:
                    failed = self._run_backward()
            if failed != NO_ERROR:
                raise _ops.unknown_op(self.plan.node_code[failed] if self.plan.n_steps
                                      else self.code[failed - self.n_leaves])
            for i in range(self.n_grads):
                (<Value>self.leaf_refs[self.grad_slots[i]])._grad = self.grad[self.grad_slots[i]]
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
        """How many mul-add pairs replay runs as one step, in pairs or in dot products (for
        tests of those paths)."""
        cdef Py_ssize_t j
        self._check_captured("_fused_pairs")
        return (sum([1 for j in range(self.n_interior) if self.code[j] == PAIR_MUL])
                + sum([self.runs[j].n for j in range(self.n_runs)]))

    def _fused_dots(self):
        """(dot product runs, their terms, groups of GROUP_LANES runs replayed side by side,
        runs continued by a later run of their chain): for tests of those paths."""
        cdef Py_ssize_t j
        self._check_captured("_fused_dots")
        return (self.n_runs, sum([self.runs[j].n for j in range(self.n_runs)]), self.n_groups,
                sum([1 for j in range(self.n_runs) if self.runs[j].role == PART]))

    def _fused_nbytes(self):
        """Bytes of the arrays the dot product loops read (runs, groups, chains, their terms;
        or the matrix plan's steps, chains, grids, their kept operands and activations, and
        workspace; the lists of leaves forward reads and backward writes), beside the shared
        layout that nbytes counts (a planned tape's data and grad are the plan's, usually far
        fewer)."""
        cdef const MatrixPlan *p = &self.plan
        cdef Py_ssize_t g, grids = 0  # the grids' kept operands and their activations' slots
        self._check_captured("_fused_nbytes")
        for g in range(p.n_groups):
            grids += (<Py_ssize_t>p.groups[g].R + p.groups[g].C) * p.groups[g].K * sizeof(double)
            if self.group_act[g]:
                grids += <Py_ssize_t>p.groups[g].R * p.groups[g].C * sizeof(int32_t)
        return (grids + (self.n_runs + GROUP_LANES * self.n_groups) * sizeof(Run)
                + self.n_chains * sizeof(Chain) + 2 * self.n_terms * sizeof(int32_t)
                + 2 * p.n_steps * sizeof(uint32_t) + p.n_nodes * (sizeof(uint8_t) + 3 * sizeof(int32_t))
                + p.n_chains * (sizeof(Chain) + sizeof(int32_t)) + 2 * p.n_terms * sizeof(int32_t)
                + p.n_groups * (sizeof(MatrixGroup) + sizeof(uint8_t)) + p.n_slots * sizeof(int32_t)
                + (self.n_reads + self.n_grads) * sizeof(int32_t)
                + (p.workspace if p.n_steps else 0) * sizeof(double))

    def _matrix_groups(self):
        """(grids replayed by the matrix kernels, their dot products, their terms): for tests
        of the matrix stage (_schedule.pyx)."""
        self._check_captured("_matrix_groups")
        return (self.plan.n_groups, self.plan.grouped_dots, self.plan.grouped_terms)

    def _grid_activations(self):
        """The op names of the activations the grids run as part of their step, a grid's
        None if it runs none (see _absorb_activations): for tests."""
        self._check_captured("_grid_activations")
        return [_ops.OPS[self.group_act[g]].name if self.group_act[g] else None
                for g in range(self.plan.n_groups)]

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
        cdef const Run *run = self.runs
        cdef const Run *group
        cdef const Chain *chains = self.chains
        cdef const int32_t *ta = self.ta
        cdef const int32_t *tb = self.tb
        cdef double y, r
        cdef uint8_t c
        while j < n:
            c = code[j]
            if c == DOT_HEAD:
                if run.role == STANDALONE:
                    data[n_leaves + j + 2 * run.n - 1] = _chain_forward(data, ta, tb, chains + run.group)
                elif run.role == LEADER:
                    group = self.group_runs + GROUP_LANES * run.group
                    if group.lanes != GROUP_LANES:
                        _run_forward_shared_few(data, a, b, group, n_leaves)
                    elif group.role == SHARED_X:
                        _run_forward_shared(data, a, b, group, n_leaves)
                    else:
                        _run_forward_group(data, a, b, group, n_leaves)
                j += 2 * run.n  # a MEMBER runs with its group's leader, a PART with its chain's end
                run += 1
                continue
            if c == PAIR_MUL:
                j = _forward_pairs(data, a, b, code, n_leaves, n, j)
                continue
            y = consts[b[j]] if c == MG_POWC else data[b[j]]  # unused by one-operand ops
            if mg_forward(c, data[a[j]], y, &r) != MG_OK:
                return n_leaves + j
            data[n_leaves + j] = r
            j += 1
        return NO_ERROR

    cdef int _raise_plain_forward_error(self) except -1:
        """After a planned forward failed: every node in tape order, one at a time, in a
        scratch copy of the tape's slots, to raise what eager mode would have raised first
        (the plan runs them in another order)."""
        cdef Py_ssize_t j, n = self.n_leaves + self.n_interior
        cdef uint8_t c
        cdef double y, r
        cdef double *data = <double *>malloc(max(n, 1) * sizeof(double))
        if data == NULL:
            raise MemoryError("Tape: out of memory replaying the graph")
        try:
            memcpy(data, self.data, self.n_leaves * sizeof(double))  # the leaves keep their slots
            for j in range(self.n_interior):
                c = _op_of(self.code[j])
                y = self.consts[self.b[j]] if c == MG_POWC else data[self.b[j]]
                if mg_forward(c, data[self.a[j]], y, &r) != MG_OK:
                    raise kernels.forward_error(c, data[self.a[j]], y)
                data[self.n_leaves + j] = r
        finally:
            free(data)
        return 0

    cdef Py_ssize_t _run_planned_forward(self) noexcept nogil:
        """The matrix stage's forward (see _schedule.pyx): its steps in height order."""
        cdef double *data = self.data
        cdef const MatrixPlan *p = &self.plan
        cdef Py_ssize_t i, index
        cdef uint32_t step
        cdef uint8_t c
        cdef double y, r
        for i in range(self.n_forward):
            step = p.forward[i]
            index = step & STEP_INDEX
            if step >> STEP_SHIFT == STEP_NODE:
                c = _op_of(p.node_code[index])
                y = self.consts[p.node_b[index]] if c == MG_POWC else data[p.node_b[index]]
                if mg_forward(c, data[p.node_a[index]], y, &r) != MG_OK:
                    return index
                data[p.node_out[index]] = r
            elif step >> STEP_SHIFT == STEP_CHAIN:
                data[p.chain_out[index]] = _chain_forward(data, p.ta, p.tb, p.chains + index)
            else:
                _group_forward(data, p.groups + index, p.slots, self.work, self.group_flags[index],
                               self.operands + self.operand_at[index],
                               self.group_act[index], self.act_slots[index])
        return NO_ERROR

    cdef Py_ssize_t _run_planned_backward(self) noexcept nogil:
        """The matrix stage's backward: its steps in the checked order (see _schedule.pyx).
        As _run_backward, each step clears the grads it read. NO_ERROR, or the index of a node
        step whose op code is unknown."""
        cdef const double *data = self.data
        cdef double *grad = self.grad
        cdef const MatrixPlan *p = &self.plan
        cdef Py_ssize_t n_leaves = self.n_leaves, i, j, index
        cdef uint32_t step
        cdef uint8_t c
        cdef int32_t ib
        cdef double y
        cdef double *gb
        grad[p.root] = 1.0
        for i in range(self.n_backward):
            step = p.backward[i]
            index = step & STEP_INDEX
            if step >> STEP_SHIFT == STEP_NODE:
                c = _op_of(p.node_code[index])
                j = p.node_out[index]
                ib = p.node_b[index]
                if c == MG_POWC:
                    y = self.consts[ib]
                    gb = NULL
                else:
                    y = data[ib]
                    gb = &grad[ib]
                if mg_backward(c, data[p.node_a[index]], y, data[j], grad[j], &grad[p.node_a[index]], gb) != MG_OK:
                    memset(grad + n_leaves, 0, (p.n_live - n_leaves) * sizeof(double))
                    return index
                grad[j] = 0.0
            elif step >> STEP_SHIFT == STEP_CHAIN:
                j = p.chain_out[index]
                _chain_backward(data, grad, p.ta, p.tb, p.chains + index, grad[j])
                grad[j] = 0.0
            else:
                _group_backward(data, grad, p.groups + index, p.slots, self.work,
                                self.operands + self.operand_at[index], self.operands_fresh,
                                self.group_act[index], self.act_slots[index], self.group_flags[index])
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
        cdef const Run *run = self.runs + self.n_runs - 1
        cdef const Run *group
        cdef const Chain *chains = self.chains
        cdef const int32_t *ta = self.ta
        cdef const int32_t *tb = self.tb
        cdef double y
        cdef double *gb
        cdef int32_t ib
        cdef uint8_t c
        # Interior grads are all 0 here (calloc, then every pass clears what it wrote): each node
        # clears its slot once its rule has read it, which touches only the slots in use, where
        # a memset would sweep the whole array (most of it the runs' unused products and sums).
        grad[n_leaves + self.n_interior - 1] = 1.0
        while j >= 0:
            c = code[j]
            if c == DOT_TAIL:
                if run.role == STANDALONE:
                    i = n_leaves + j  # the chain's last sum
                    _chain_backward(data, grad, ta, tb, chains + run.group, grad[i])
                    grad[i] = 0.0  # cleared for the next pass
                elif run.role == LEADER:
                    group = self.group_runs + GROUP_LANES * run.group
                    if group.lanes != GROUP_LANES:
                        _run_backward_shared_few(data, grad, a, b, group, n_leaves)
                    elif group.role == SHARED_X:
                        _run_backward_shared(data, grad, a, b, group, n_leaves)
                    else:
                        _run_backward_group(data, grad, a, b, group, n_leaves)
                j -= 2 * run.n  # a MEMBER runs with its group's leader (the lowest of its runs),
                # a PART with its chain's end (the highest)
                run -= 1
                continue
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
                memset(grad + n_leaves, 0, self.n_interior * sizeof(double))
                return i
            grad[i] = 0.0
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
        grad[add_slot] = 0.0
        ia = a[j]
        ib = b[j]
        wa = a[j - 1]
        wb = b[j - 1]
        held_grad = grad[ia] + g  # the add: grad[ia] += g; grad[ib] += g
        grad[ia] = held_grad
        grad[ib] += g
        gm = grad[add_slot - 1]  # the mul
        grad[add_slot - 1] = 0.0
        grad[wa] += data[wb] * gm
        grad[wb] += data[wa] * gm
        # grad[ia] stays valid in the register unless a later add of this pair wrote it
        held = ia if (ia != ib and ia != wa and ia != wb) else -1
        j -= 2
        if j < 0 or code[j] != PAIR_ADD:
            return j


cdef inline void _run_forward_shared(double *data, const int32_t *a, const int32_t *b,
                                     const Run *r, Py_ssize_t n_leaves) noexcept nogil:
    """_run_forward_group where every run reads the same x at each term (see _shares_x)."""
    cdef Py_ssize_t j0 = r[0].head, j1 = r[1].head, j2 = r[2].head, j3 = r[3].head
    cdef Py_ssize_t k, n = r[0].n
    cdef double x = data[b[j0]]
    cdef double s0 = mg_mul(data[a[j0]], x), s1 = mg_mul(data[a[j1]], x)
    cdef double s2 = mg_mul(data[a[j2]], x), s3 = mg_mul(data[a[j3]], x)
    s0 = mg_add(data[r[0].start], s0) if r[0].start_first else mg_add(s0, data[r[0].start])
    s1 = mg_add(data[r[1].start], s1) if r[1].start_first else mg_add(s1, data[r[1].start])
    s2 = mg_add(data[r[2].start], s2) if r[2].start_first else mg_add(s2, data[r[2].start])
    s3 = mg_add(data[r[3].start], s3) if r[3].start_first else mg_add(s3, data[r[3].start])
    for k in range(2, 2 * n, 2):
        x = data[b[j0 + k]]
        s0 = mg_add(s0, mg_mul(data[a[j0 + k]], x))
        s1 = mg_add(s1, mg_mul(data[a[j1 + k]], x))
        s2 = mg_add(s2, mg_mul(data[a[j2 + k]], x))
        s3 = mg_add(s3, mg_mul(data[a[j3 + k]], x))
    data[n_leaves + j0 + 2 * n - 1] = s0
    data[n_leaves + j1 + 2 * n - 1] = s1
    data[n_leaves + j2 + 2 * n - 1] = s2
    data[n_leaves + j3 + 2 * n - 1] = s3


cdef inline void _shared_term_backward(const double *data, double *grad, const int32_t *a,
                                       const int32_t *b, Py_ssize_t j0, Py_ssize_t j1,
                                       Py_ssize_t j2, Py_ssize_t j3, double g0, double g1,
                                       double g2, double g3) noexcept nogil:
    """One term of the four runs, runs 3 down to 0, each as mg_backward's mul (grad[w] += x*g,
    then grad[x] += w*g), the grad of the shared x carried in a register."""
    cdef int32_t ix = b[j0], w0 = a[j0], w1 = a[j1], w2 = a[j2], w3 = a[j3]
    cdef double x = data[ix], gx = grad[ix]
    grad[w3] += x * g3
    gx += data[w3] * g3
    grad[w2] += x * g2
    gx += data[w2] * g2
    grad[w1] += x * g1
    gx += data[w1] * g1
    grad[w0] += x * g0
    gx += data[w0] * g0
    grad[ix] = gx


cdef inline void _run_backward_shared(const double *data, double *grad, const int32_t *a,
                                      const int32_t *b, const Run *r, Py_ssize_t n_leaves) noexcept nogil:
    """_run_backward_group where every run reads the same x at each term (see _shares_x)."""
    cdef Py_ssize_t k, n = r[0].n
    cdef Py_ssize_t j0 = r[0].head, j1 = r[1].head, j2 = r[2].head, j3 = r[3].head
    cdef double t0 = grad[n_leaves + j0 + 2 * n - 1], t1 = grad[n_leaves + j1 + 2 * n - 1]
    cdef double t2 = grad[n_leaves + j2 + 2 * n - 1], t3 = grad[n_leaves + j3 + 2 * n - 1]
    cdef double g0 = 0.0 + t0, g1 = 0.0 + t1, g2 = 0.0 + t2, g3 = 0.0 + t3
    grad[n_leaves + j0 + 2 * n - 1] = 0.0  # cleared for the next pass (see _run_backward)
    grad[n_leaves + j1 + 2 * n - 1] = 0.0
    grad[n_leaves + j2 + 2 * n - 1] = 0.0
    grad[n_leaves + j3 + 2 * n - 1] = 0.0
    for k in range(2 * (n - 1), 0, -2):
        _shared_term_backward(data, grad, a, b, j0 + k, j1 + k, j2 + k, j3 + k, g0, g1, g2, g3)
    if n > 1:
        t0, t1, t2, t3 = g0, g1, g2, g3
    grad[r[3].start] += t3
    grad[r[2].start] += t2
    grad[r[1].start] += t1
    grad[r[0].start] += t0
    _shared_term_backward(data, grad, a, b, j0, j1, j2, j3, g0, g1, g2, g3)


cdef inline void _run_forward_shared_few(double *data, const int32_t *a, const int32_t *b,
                                         const Run *r, Py_ssize_t n_leaves) noexcept nogil:
    """_run_forward_shared for a group of fewer than GROUP_LANES runs (r[0].lanes of them)."""
    cdef Py_ssize_t l, k, lanes = r[0].lanes, n = r[0].n
    cdef Py_ssize_t j[GROUP_LANES]
    cdef double s[GROUP_LANES]
    cdef double x = data[b[r[0].head]], m
    for l in range(lanes):
        j[l] = r[l].head
        m = mg_mul(data[a[j[l]]], x)
        s[l] = mg_add(data[r[l].start], m) if r[l].start_first else mg_add(m, data[r[l].start])
    for k in range(2, 2 * n, 2):
        x = data[b[j[0] + k]]
        for l in range(lanes):
            s[l] = mg_add(s[l], mg_mul(data[a[j[l] + k]], x))
    for l in range(lanes):
        data[n_leaves + j[l] + 2 * n - 1] = s[l]


cdef inline void _shared_few_term_backward(const double *data, double *grad, const int32_t *a,
                                           const int32_t *b, const Py_ssize_t *j, Py_ssize_t k,
                                           const double *g, Py_ssize_t lanes) noexcept nogil:
    """_shared_term_backward for fewer lanes: term k (tape offset) of runs lanes-1 down to 0."""
    cdef Py_ssize_t l
    cdef int32_t ix = b[j[0] + k], w
    cdef double x = data[ix], gx = grad[ix]
    for l in range(lanes - 1, -1, -1):
        w = a[j[l] + k]
        grad[w] += x * g[l]
        gx += data[w] * g[l]
    grad[ix] = gx


cdef inline void _run_backward_shared_few(const double *data, double *grad, const int32_t *a,
                                          const int32_t *b, const Run *r,
                                          Py_ssize_t n_leaves) noexcept nogil:
    """_run_backward_shared for a group of fewer than GROUP_LANES runs (r[0].lanes of them),
    in the same order: terms n-1 .. 1 (runs from the last down), the starts, the terms 0."""
    cdef Py_ssize_t l, k, lanes = r[0].lanes, n = r[0].n, top
    cdef Py_ssize_t j[GROUP_LANES]
    cdef double g[GROUP_LANES]
    cdef double t[GROUP_LANES]
    for l in range(lanes):
        j[l] = r[l].head
        top = n_leaves + j[l] + 2 * n - 1
        t[l] = grad[top]
        g[l] = 0.0 + t[l]
        grad[top] = 0.0  # cleared for the next pass (see _run_backward)
    for k in range(2 * (n - 1), 0, -2):
        _shared_few_term_backward(data, grad, a, b, j, k, g, lanes)
    for l in range(lanes - 1, -1, -1):
        grad[r[l].start] += g[l] if n > 1 else t[l]
    _shared_few_term_backward(data, grad, a, b, j, 0, g, lanes)

# ---------------------------------------------------------------------------------------------
# A grid of dot products (see _schedule.pyx): its operands gathered into contiguous buffers, the
# matrix kernels of micrograd/_matmul.h (each sum added in eager's order, many sums at once), the
# results scattered back.

cdef enum:
    NEED_W = 1  # group_flags: some weight of the grid needs its grad
    NEED_X = 2  # some input does
    FIXED_X = 4  # every input is a constant leaf: gathered once, at capture
    WANTS_GRAD = 1  # a leaf's role (_find_grid_flags): backward writes its grad
    READ = 2  # forward reads its data


cdef inline bint _any_leaf_is(const int32_t *slots, Py_ssize_t n, const uint8_t *role,
                              uint8_t what, Py_ssize_t n_leaves) noexcept:
    """Is any of these plan slots a computed one, or a leaf whose role has ``what``?"""
    cdef Py_ssize_t i
    for i in range(n):
        if slots[i] >= n_leaves or role[slots[i]] & what:
            return True
    return False


cdef inline void _gather(double *dst, const double *src, const int32_t *slots,
                         Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        dst[i] = src[slots[i]]


cdef inline void _scatter(double *dst, const double *src, const int32_t *slots,
                          Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        dst[slots[i]] = src[i]


cdef void _group_forward(double *data, const MatrixGroup *g, const int32_t *slots,
                         double *work, uint8_t flags, double *operands, uint8_t act,
                         const int32_t *act_slots) noexcept nogil:
    """out[r, c] = start[r, c] + w[r, 0]*x[c, 0] + ... as eager adds it. The sums and starts
    are laid out column by column (sample by sample, as the nodes that read them): the kernels
    run on the transposed problem, out^T = start^T + x . w^T, which makes the same products (in
    the other operand order, the same bits) and adds them in the same order."""
    cdef Py_ssize_t R = g.R, C = g.C, K = g.K, i
    cdef double *W = operands  # kept for backward
    cdef double *X = W + R * K
    cdef double *S = work
    cdef double *O = S + R * C
    _gather(W, data, slots + g.w, R * K)
    if not flags & FIXED_X:
        _gather(X, data, slots + g.x, C * K)
    _gather(S, data, slots + g.s, R * C)
    mg_mm_forward(C, R, K, X, W, S, O, O + R * C)
    _scatter(data, O, slots + g.o, R * C)
    if act == MG_RELU:  # the layer's activation (see _absorb_activations): it cannot fail
        for i in range(R * C):  # contiguous, so the compiler makes it branch-free (signs vary)
            S[i] = mg_relu(O[i])
        _scatter(data, S, act_slots, R * C)
    elif act == MG_TANH:
        for i in range(R * C):
            data[act_slots[i]] = mg_tanh(O[i])


cdef void _group_backward(const double *data, double *grad, const MatrixGroup *g,
                          const int32_t *slots, double *work, double *operands, bint fresh,
                          uint8_t act, const int32_t *act_slots, uint8_t flags) noexcept nogil:
    """Each dot product's backward as _chain_backward's: every term gets 0.0 + its sum's grad
    (top), the start gets that too (top itself if there is one term); a weight's grad its
    contributions column by column, an input's row by row (the plan's order: eager's). G is
    laid out column by column (see _group_forward), so the transposed problem's kernels run:
    the input gradient's kernel makes dW, the weight gradient's dX. A side none of whose
    operands needs a grad (``flags``, see _find_grid_flags) is skipped."""
    cdef Py_ssize_t R = g.R, C = g.C, K = g.K, i
    cdef const int32_t *out = slots + g.o
    cdef const int32_t *start = slots + g.s
    cdef double *W = operands  # as forward gathered them, if fresh
    cdef double *X = W + R * K
    cdef double *dW = work
    cdef double *dX = dW + R * K
    cdef double *G = dX + C * K
    cdef double *T = G + R * C
    cdef double *scratch = T + R * C
    if act == MG_RELU:  # the layer's activation first, as its own steps ran before (see
        for i in range(R * C):  # _absorb_activations): mg_backward's rule for relu
            grad[out[i]] += mg_relu_da(data[act_slots[i]]) * grad[act_slots[i]]
            grad[act_slots[i]] = 0.0
    elif act:
        for i in range(R * C):
            mg_backward(act, data[out[i]], 0.0, data[act_slots[i]], grad[act_slots[i]],
                        &grad[out[i]], NULL)
            grad[act_slots[i]] = 0.0
    for i in range(R * C):
        T[i] = grad[out[i]]
        grad[out[i]] = 0.0  # cleared for the next pass (see _run_backward)
        G[i] = 0.0 + T[i]
    if not fresh:
        _gather(W, data, slots + g.w, R * K)
        if not flags & FIXED_X:
            _gather(X, data, slots + g.x, C * K)
    if flags & NEED_W:
        _gather(dW, grad, slots + g.w, R * K)
        mg_mm_backward_x(C, R, K, X, G, dW, scratch)  # dW[r, k] += x[c, k] * G[c, r], c in order
        _scatter(grad, dW, slots + g.w, R * K)
    if flags & NEED_X:
        _gather(dX, grad, slots + g.x, C * K)
        mg_mm_backward_w(C, R, K, W, G, dX, scratch)  # dX[c, k] += w[r, k] * G[c, r], r in order
        _scatter(grad, dX, slots + g.x, C * K)
    if K == 1:
        G = T
    if g.row_starts:
        _row_start_backward(grad, start, G, R, C)
    else:  # the plan's order (see _schedule.pyx's _verify_group): column by column
        for i in range(R * C):
            grad[start[i]] += G[i]


cdef inline void _row_start_backward(double *grad, const int32_t *start, const double *G,
                                     Py_ssize_t R, Py_ssize_t C) noexcept nogil:
    """Each row's start (a neuron's bias, its own) adds the row's grads in column order: the
    sums run in registers, four rows at a time, instead of through memory (G column by
    column: G[c * R + r])."""
    cdef Py_ssize_t r = 0, c
    cdef double s0, s1, s2, s3
    while r + 4 <= R:
        s0 = grad[start[r]]
        s1 = grad[start[r + 1]]
        s2 = grad[start[r + 2]]
        s3 = grad[start[r + 3]]
        for c in range(C):
            s0 = s0 + G[c * R + r]
            s1 = s1 + G[c * R + r + 1]
            s2 = s2 + G[c * R + r + 2]
            s3 = s3 + G[c * R + r + 3]
        grad[start[r]] = s0
        grad[start[r + 1]] = s1
        grad[start[r + 2]] = s2
        grad[start[r + 3]] = s3
        r += 4
    while r < R:
        s0 = grad[start[r]]
        for c in range(C):
            s0 = s0 + G[c * R + r]
        grad[start[r]] = s0
        r += 1


cdef Py_ssize_t _drop_steps(uint32_t *program, Py_ssize_t n, const uint8_t *dropped) noexcept:
    """Remove from program the node steps whose records are marked; return its new length."""
    cdef Py_ssize_t i, kept = 0
    for i in range(n):
        if program[i] >> STEP_SHIFT == STEP_NODE and dropped[program[i] & STEP_INDEX]:
            continue
        program[kept] = program[i]
        kept += 1
    return kept


cdef inline bint _is_lane(Py_ssize_t q, const Py_ssize_t *lanes, Py_ssize_t n_lanes) noexcept:
    cdef Py_ssize_t l
    for l in range(n_lanes):
        if lanes[l] == q:
            return True
    return False


cdef inline bint _claim(int32_t s, Py_ssize_t first, int32_t *stamp, int32_t *key, int32_t mark,
                        int32_t k) noexcept:
    """Mark slot s as receiving grads from term k of a group (see _can_group); False if it is
    computed inside the group's span, a start, or met at another term index."""
    if s >= first or (stamp[s] == mark and key[s] != k):
        return False
    stamp[s] = mark
    key[s] = k
    return True


_api.Tape.register(CompiledTape)
