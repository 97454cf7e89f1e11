# The compiled tape's matrix stage (see _schedule.pyx): what capture's planner hands the replay.
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t
from micrograd._kernels cimport MG_ADD, MG_MUL

cdef enum:
    # Tape codes beyond the engine's ops: a mul whose result the next node (an add) takes, run
    # as one step (see _tape.pyx). _op_of maps them back to MG_MUL and MG_ADD.
    PAIR_MUL = 200
    PAIR_ADD = 201
    DOT_HEAD = 202
    DOT_TAIL = 203

cdef enum:
    # A program entry: its kind in the top two bits, an index below.
    STEP_NODE = 0       # one tape node (index: its tape index)
    STEP_CHAIN = 1      # one dot product, replayed by _chain_forward/_chain_backward
    STEP_GROUP = 2      # a grid of dot products, replayed by the matrix kernels
    STEP_SHIFT = 30
    STEP_INDEX = (1 << 30) - 1


ctypedef struct Chain:
    # A sum of products replayed by one loop: its terms' operands ta[first:first+n],
    # tb[first:first+n], added to `start` as eager mode adds them.
    int32_t first
    int32_t n
    int32_t start        # the first run's start
    uint8_t start_first


ctypedef struct MatrixGroup:
    # R x C dot products of K terms each: dot (r, c) is start[r, c] + sum_k w[r, k] * x[c, k],
    # its sum stored in out[r, c]. The slots, in MatrixPlan.slots from these offsets: w and x
    # row by row (w[r, k] at w + r*K + k), start and out column by column (out[r, c] at
    # o + c*R + r: sample by sample, for a layer, as the nodes that read them).
    # Rows and columns are in the order in which eager backward meets them, so the kernels'
    # loops (columns ascending for a weight's grad, rows ascending for an input's) give every
    # grad its contributions in eager's order.
    int32_t R, C, K
    int64_t w, x, s, o
    uint8_t row_starts   # each row starts from one slot (a neuron's bias), each row's its own


ctypedef struct MatrixPlan:
    # Replay programs (entries STEP_* << STEP_SHIFT | index), forward in an order where every
    # node comes after its operands (by height), backward in one that keeps each grad's
    # contributions in eager's order (checked at capture by _verify).
    uint32_t *forward
    uint32_t *backward
    Py_ssize_t n_steps
    # The plan's own slots: the leaves first (as the tape's), then each step's results in
    # forward order. The products and partial sums of the dot products have none: the replay
    # never stores them, and the arrays it sweeps shrink to the values it uses (on the digits
    # batch, 1/17 of the tape's), which stay in cache.
    Py_ssize_t n_live
    double *data            # the captured values there
    int32_t root
    int32_t *output_slots
    # STEP_NODE's index: a node's op code, operand slots (b: for powc, its exponent's index in
    # the tape's consts; unused by one-operand ops) and result slot
    uint8_t *node_code
    int32_t *node_a
    int32_t *node_b
    int32_t *node_out
    Py_ssize_t n_nodes
    Chain *chains
    int32_t *chain_out   # each chain's sum's slot
    int32_t *ta
    int32_t *tb
    Py_ssize_t n_chains, n_terms
    MatrixGroup *groups
    Py_ssize_t n_groups
    int32_t *slots
    Py_ssize_t n_slots
    Py_ssize_t workspace  # doubles the replay needs for the largest group
    Py_ssize_t grouped_dots, grouped_terms


cdef inline uint8_t _op_of(uint8_t code) noexcept nogil:
    """The engine's op code of a tape code (a pair's or a run's codes are MUL and ADD)."""
    if code == PAIR_MUL or code == DOT_HEAD:
        return MG_MUL
    return MG_ADD if code == PAIR_ADD or code == DOT_TAIL else code


cdef int plan_matrices(MatrixPlan *plan, Py_ssize_t n_leaves, Py_ssize_t n_interior,
                       const uint8_t *code, const int32_t *a, const int32_t *b,
                       const int32_t *outputs, Py_ssize_t n_outputs, const double *data) except -1
cdef void free_plan(MatrixPlan *plan) noexcept
cdef int grow_array(void **array, Py_ssize_t n, size_t item) except -1
