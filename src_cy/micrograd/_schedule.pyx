# cython: language_level=3
"""The compiled tape's matrix stage: find the layers of dot products in a captured graph and plan
a replay that runs each as matrix kernels (micrograd/_matmul.h), with eager mode's bits.

A dot product is a sum that eager mode builds as ``start + w0*x0 + w1*x1 + ...`` (Karpathy's
Neuron: ``sum((wi*xi ...), self.b)``), each product and partial sum read once. Over a batch, one
layer of an MLP is a grid of them: R neurons (rows: one vector of weights each, the products'
first operands) by C samples (columns: one vector of inputs each, the second operands). Eager
mode builds the grid sample by sample, between the other nodes of each sample; so does the
tape. To run the grid as one matrix product, the replay must leave the tape's order:

- forward runs every node after its operands: by height (a leaf is 0, a node one more than its
  highest operand). A grid whose dot products all have one height runs as one step. The values
  do not depend on the order, only on the operands, so they are eager mode's bits;
- backward is where the order counts: a grad adds its contributions one at a time, and floating
  point addition is not associative. The plan orders the steps by a topological sort of "this
  step must come after that one" (a node's rule reads its grad once every contribution is in; a
  grad's contributions keep eager's order), highest first. Inside a grid, the kernels add a
  weight's contributions sample by sample and an input's neuron by neuron, in the order eager
  backward meets them.

Then ``_verify`` replays the whole backward plan on paper, contribution by contribution, and
checks that every grad gets its contributions in eager's order, each rule reading its grad only
when it is complete. A plan that fails is dropped and the tape replays as before (_tape.pyx's
dot product runs): the matrix stage can only make replay faster, never change a bit.

Capture pays for the planner, so it works in a space the size of what it schedules, not of the
tape. Once the dot products are found, the planner numbers only what a step can name: the
units (each node outside a dot product, each dot product, then each grid) and the slots a unit
reads or writes (the leaves, then each such node's result, then each dot product's sum). The
products and partial sums inside the dot products, most of an MLP's nodes, are read once, by
their own dot product, so no later stage names them. On the toy MLPs this shrinks every array
but the dot products' terms from the tape's 10^7 entries to a few hundred thousand. The
numbering keeps the tape's order, so the plan is the one a plan over tape slots would make.
"""
cimport cython
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stddef cimport ptrdiff_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcmp, memcpy, memset
from micrograd._kernels cimport MG_ADD, MG_MUL, mg_arity

from micrograd._matmul cimport mg_mm_scratch_doubles

cdef enum:
    MIN_COLUMNS = 2         # a grid of one column is a matrix-vector product: the runs do it
    MAX_SLOTS = 1 << 30     # seq numbers (2 per node) fit in 32 bits

# When a plan pays (tests lower these to reach the matrix path on small graphs):
THRESHOLDS = {
    "nodes": 256,        # smaller tapes keep the plain replay: too little to gain
    "group_terms": 64,   # a grid of R * C * K terms below this: its gathers cost more than it saves
    "share": 4,          # the grids must hold at least 1/share of the tape's nodes
}


cdef void *_alloc(Py_ssize_t n, size_t size, bint zero=False) except NULL:
    cdef void *p = calloc(max(n, 1), size) if zero else malloc(max(n, 1) * size)
    if p == NULL:
        raise MemoryError("Tape: out of memory planning the replay")
    return p


cdef void free_plan(MatrixPlan *plan) noexcept:
    free(plan.forward)
    free(plan.backward)
    free(plan.chains)
    free(plan.chain_out)
    free(plan.ta)
    free(plan.tb)
    free(plan.groups)
    free(plan.slots)
    free(plan.data)
    free(plan.output_slots)
    free(plan.node_code)
    free(plan.node_a)
    free(plan.node_b)
    free(plan.node_out)
    memset(plan, 0, sizeof(MatrixPlan))


cdef inline int _arity(uint8_t code) noexcept nogil:
    return mg_arity(_op_of(code))


@cython.final
cdef class _Planner:
    """The planner's working arrays (freed with it, whatever happens)."""
    cdef Py_ssize_t L, N, S
    cdef Py_ssize_t P       # the nodes outside the dot products (the plain nodes)
    cdef Py_ssize_t SC      # the slots the units name: L leaves, P plain nodes, n_dots sums
    cdef const uint8_t *code
    cdef const int32_t *a
    cdef const int32_t *b
    # runs: tape index of the first product, terms, start slot, start on the left
    cdef int32_t *run_head
    cdef int32_t *run_n
    cdef int32_t *run_start
    cdef int32_t *run_next
    cdef uint8_t *run_sf
    cdef uint8_t *run_continues
    cdef Py_ssize_t n_runs
    # dot products: terms ta/tb/tm[first:first+n] (tm: the product's tape index); ta, tb and
    # d_start name tape slots until number_compactly, compact slots after
    cdef int32_t *d_first
    cdef int32_t *d_n
    cdef int32_t *d_start
    cdef int32_t *d_out
    cdef int32_t *d_add0
    cdef int32_t *d_height
    cdef int32_t *d_group
    cdef int32_t *d_chain
    cdef int32_t *chain_dot   # a chain's dot product
    cdef uint8_t *d_sf
    cdef Py_ssize_t n_dots
    cdef int32_t *ta
    cdef int32_t *tb
    cdef int32_t *tm
    cdef Py_ssize_t n_terms
    cdef int32_t *dot_of      # N: the dot product a node belongs to, or ~rank for plain node rank
    cdef int32_t *plain_node  # P: a plain node's tape index
    cdef int32_t *pa          # P: its operands' compact slots (pb: 0 for one-operand ops)
    cdef int32_t *pb
    cdef int32_t *height      # SC
    # groups: R, C, K, then each group's grid of dots (row-major, rows and columns in order)
    cdef list groups          # of (R, C, K, offset into grid)
    cdef int32_t *grid
    # units (P plain nodes, n_dots dot products, the groups) and the backward order
    cdef int32_t *unit_height
    cdef uint32_t *forward
    cdef uint32_t *backward
    cdef Py_ssize_t n_steps
    cdef int32_t *last_unit   # SC
    cdef int32_t *remaining   # SC
    cdef int32_t *edge_src
    cdef int32_t *edge_dst
    cdef Py_ssize_t n_edges, edge_cap

    def __dealloc__(self):
        free(self.run_head); free(self.run_n); free(self.run_start); free(self.run_next)
        free(self.run_sf); free(self.run_continues)
        free(self.d_first); free(self.d_n); free(self.d_start); free(self.d_out)
        free(self.d_add0); free(self.d_height); free(self.d_group); free(self.d_chain)
        free(self.d_sf); free(self.ta); free(self.tb); free(self.tm)
        free(self.dot_of); free(self.plain_node); free(self.pa); free(self.pb)
        free(self.height); free(self.grid); free(self.unit_height)
        free(self.forward); free(self.backward); free(self.last_unit); free(self.remaining)
        free(self.edge_src); free(self.edge_dst); free(self.chain_dot)

    # -- 1. dot products --------------------------------------------------------------------
    cdef bint _is_mul_add(self, const uint8_t *uses, Py_ssize_t j) noexcept:
        """A product read once, by the add right after it."""
        cdef int32_t m = <int32_t>(self.L + j)
        return (_op_of(self.code[j]) == MG_MUL and _op_of(self.code[j + 1]) == MG_ADD
                and uses[m] == 1 and (self.a[j + 1] == m or self.b[j + 1] == m))

    cdef Py_ssize_t _run_length(self, const uint8_t *uses, Py_ssize_t j) noexcept:
        """How many mul-add pairs continue the run starting at j, each taking the sum before."""
        cdef Py_ssize_t n = 1, k = j + 2, L = self.L
        while (k + 1 < self.N and _op_of(self.code[k]) == MG_MUL
               and _op_of(self.code[k + 1]) == MG_ADD
               and uses[L + k] == 1 and uses[L + k - 1] == 1
               and self.a[k + 1] == L + k - 1 and self.b[k + 1] == L + k):
            n += 1
            k += 2
        return n

    cdef int find_runs(self, const uint8_t *uses) except -1:
        cdef Py_ssize_t j = 0, n, r, cap = 0
        while j + 1 < self.N:  # count first
            if self._is_mul_add(uses, j):
                cap += 1
                j += 2 * self._run_length(uses, j)
            else:
                j += 1
        self.run_head = <int32_t *>_alloc(cap, sizeof(int32_t))
        self.run_n = <int32_t *>_alloc(cap, sizeof(int32_t))
        self.run_start = <int32_t *>_alloc(cap, sizeof(int32_t))
        self.run_next = <int32_t *>_alloc(cap, sizeof(int32_t))
        self.run_sf = <uint8_t *>_alloc(cap, sizeof(uint8_t))
        self.run_continues = <uint8_t *>_alloc(cap, sizeof(uint8_t), True)
        j = 0
        while j + 1 < self.N:
            if self._is_mul_add(uses, j):
                r = self.n_runs
                n = self._run_length(uses, j)
                self.run_head[r] = <int32_t>j
                self.run_n[r] = <int32_t>n
                self.run_sf[r] = self.a[j + 1] != self.L + j
                self.run_start[r] = self.a[j + 1] if self.run_sf[r] else self.b[j + 1]
                self.run_next[r] = -1
                self.n_runs += 1
                j += 2 * n
            else:
                j += 1
        return 0

    cdef Py_ssize_t terms_in_runs(self) noexcept:
        cdef Py_ssize_t r, n = 0
        for r in range(self.n_runs):
            n += self.run_n[r]
        return n

    cdef int link_runs(self, const uint8_t *uses) except -1:
        """A run continues another when it takes the other's last sum, read by nothing else,
        as its start on the left (acc + w*x): the first neuron of a layer, whose inputs capture
        records between its products."""
        cdef Py_ssize_t r, q, s
        for q in range(self.n_runs):
            s = self.run_start[q]
            if not self.run_sf[q] or uses[s] != 1:
                continue
            r = self._run_ending_at(s, q)
            if r >= 0:
                self.run_next[r] = <int32_t>q
                self.run_continues[q] = True
        return 0

    cdef Py_ssize_t _run_ending_at(self, Py_ssize_t s, Py_ssize_t q) noexcept:
        """The run before run q whose last sum is slot s, or -1. Runs are in tape order, so
        their last sums are too: a binary search (a table by slot would cost a tape's worth)."""
        cdef Py_ssize_t lo = 0, hi = q, mid, tail
        while lo < hi:
            mid = (lo + hi) // 2
            tail = self.L + self.run_head[mid] + 2 * self.run_n[mid] - 1
            if tail == s:
                return mid
            if tail < s:
                lo = mid + 1
            else:
                hi = mid
        return -1

    cdef int make_dots(self) except -1:
        cdef Py_ssize_t r, q, k, j, d, n_terms = 0, n_dots = 0
        for r in range(self.n_runs):
            n_terms += self.run_n[r]
            if not self.run_continues[r]:
                n_dots += 1
        self.d_first = <int32_t *>_alloc(n_dots, sizeof(int32_t))
        self.d_n = <int32_t *>_alloc(n_dots, sizeof(int32_t))
        self.d_start = <int32_t *>_alloc(n_dots, sizeof(int32_t))
        self.d_out = <int32_t *>_alloc(n_dots, sizeof(int32_t))
        self.d_add0 = <int32_t *>_alloc(n_dots, sizeof(int32_t))
        self.d_height = <int32_t *>_alloc(n_dots, sizeof(int32_t))
        self.d_group = <int32_t *>_alloc(n_dots, sizeof(int32_t))
        self.d_chain = <int32_t *>_alloc(n_dots, sizeof(int32_t))
        self.d_sf = <uint8_t *>_alloc(n_dots, sizeof(uint8_t))
        self.ta = <int32_t *>_alloc(n_terms, sizeof(int32_t))
        self.tb = <int32_t *>_alloc(n_terms, sizeof(int32_t))
        self.tm = <int32_t *>_alloc(n_terms, sizeof(int32_t))
        self.dot_of = <int32_t *>_alloc(self.N, sizeof(int32_t))
        memset(self.dot_of, 0xff, self.N * sizeof(int32_t))  # -1: not in a dot product
        for r in range(self.n_runs):
            if self.run_continues[r]:
                continue
            d = self.n_dots
            self.n_dots += 1
            self.d_first[d] = <int32_t>self.n_terms
            self.d_start[d] = self.run_start[r]
            self.d_sf[d] = self.run_sf[r]
            self.d_add0[d] = self.run_head[r] + 1
            self.d_group[d] = -1
            q = r
            while q >= 0:
                for k in range(self.run_n[q]):
                    j = self.run_head[q] + 2 * k
                    self.ta[self.n_terms] = self.a[j]
                    self.tb[self.n_terms] = self.b[j]
                    self.tm[self.n_terms] = <int32_t>j
                    self.n_terms += 1
                    self.dot_of[j] = <int32_t>d
                    self.dot_of[j + 1] = <int32_t>d
                self.d_out[d] = <int32_t>(self.L + self.run_head[q] + 2 * self.run_n[q] - 1)
                q = self.run_next[q]
            self.d_n[d] = <int32_t>(self.n_terms - self.d_first[d])
        return 0

    # -- 1b. compact numbering (see the module's docstring) ------------------------------------
    cdef bint number_compactly(self) except -1:
        """Rank the plain nodes (dot_of[j] = ~rank), then name every operand the units read by
        its compact slot. False if one names a slot inside a dot product (never expected: a
        run's inner slots are read once, by the run; the check keeps a plan from a bug)."""
        cdef Py_ssize_t j, t, d, rank = 0
        self.P = self.N - 2 * self.n_terms  # a term is a product and its add
        self.SC = self.L + self.P + self.n_dots
        self.plain_node = <int32_t *>_alloc(self.P, sizeof(int32_t))
        self.pa = <int32_t *>_alloc(self.P, sizeof(int32_t))
        self.pb = <int32_t *>_alloc(self.P, sizeof(int32_t))
        for j in range(self.N):  # tape order: a node's operands are ranked before it
            if self.dot_of[j] < 0:
                self.dot_of[j] = <int32_t>~rank
                self.plain_node[rank] = <int32_t>j
                self.pa[rank] = self.compact(self.a[j])
                self.pb[rank] = self.compact(self.b[j]) if _arity(self.code[j]) == 2 else 0
                if self.pa[rank] < 0 or self.pb[rank] < 0:
                    return False
                rank += 1
        for t in range(self.n_terms):
            self.ta[t] = self.compact(self.ta[t])
            self.tb[t] = self.compact(self.tb[t])
            if self.ta[t] < 0 or self.tb[t] < 0:
                return False
        for d in range(self.n_dots):
            self.d_start[d] = self.compact(self.d_start[d])
            if self.d_start[d] < 0:
                return False
        return True

    cdef inline Py_ssize_t compact(self, Py_ssize_t s) noexcept:
        """Tape slot s's compact slot: a leaf keeps its number, a plain node's result is
        L + its rank, a dot product's sum L + P + the dot's number; -1 inside a dot product."""
        cdef Py_ssize_t v
        if s < self.L:
            return s
        v = self.dot_of[s - self.L]
        if v < 0:
            return self.L + ~v
        return self.L + self.P + v if self.d_out[v] == s else -1

    cdef inline Py_ssize_t tape_slot(self, Py_ssize_t c) noexcept:
        """The tape slot of compact slot c (compact's inverse)."""
        if c < self.L:
            return c
        if c < self.L + self.P:
            return self.L + self.plain_node[c - self.L]
        return self.d_out[c - self.L - self.P]

    # -- 2. heights ---------------------------------------------------------------------------
    cdef int measure_heights(self) except -1:
        """A leaf's height is 0, a node's one more than its highest operand's; a dot product's
        (at its sum's slot) one more than its highest operand's or start's."""
        cdef Py_ssize_t j, d, t, r, L = self.L
        cdef int32_t h
        self.height = <int32_t *>_alloc(self.SC, sizeof(int32_t), True)
        for j in range(self.N):  # tape order: operands first
            d = self.dot_of[j]
            if d < 0:
                r = ~d
                h = self.height[self.pa[r]]
                if _arity(self.code[j]) == 2:
                    h = max(h, self.height[self.pb[r]])
                self.height[L + r] = h + 1
            elif L + j == self.d_out[d]:
                h = self.height[self.d_start[d]]
                for t in range(self.d_first[d], self.d_first[d] + self.d_n[d]):
                    h = max(h, self.height[self.ta[t]], self.height[self.tb[t]])
                self.height[L + self.P + d] = h + 1
                self.d_height[d] = h + 1
        return 0

    # -- 3. grids -----------------------------------------------------------------------------
    cdef Py_ssize_t find_grids(self) except -1:
        """Group the dot products into grids (see the module's docstring); return how many
        nodes the accepted grids hold."""
        cdef Py_ssize_t d, NR, NC, i, u, v, g, R, C, K, lr, lc, k, t, s, base, total = 0
        cdef list row_of = self._vector_ids(self.ta), col_of = self._vector_ids(self.tb), parent
        cdef bint ok
        cdef Py_ssize_t min_terms = THRESHOLDS["group_terms"]
        NR = max(row_of, default=-1) + 1  # ids count up from 0
        NC = max(col_of, default=-1) + 1
        parent = list(range(NR + NC))  # union-find: a grid is a connected set of rows and columns
        for d in range(self.n_dots):
            u = _find(parent, row_of[d])
            v = _find(parent, NR + <Py_ssize_t>col_of[d])
            if u != v:
                parent[u] = v
        members = {}  # component -> its dots
        for d in range(self.n_dots):
            members.setdefault(_find(parent, row_of[d]), []).append(d)
        self.groups = []
        grid_cells = []
        cdef int32_t *stamp = <int32_t *>_alloc(self.SC, sizeof(int32_t), True)
        try:
            for dots in members.values():
                local_rows = {}
                local_cols = {}
                for d in dots:
                    local_rows.setdefault(row_of[d], len(local_rows))
                    local_cols.setdefault(col_of[d], len(local_cols))
                R = len(local_rows)
                C = len(local_cols)
                K = self.d_n[dots[0]]
                if (len(dots) != R * C or C < MIN_COLUMNS or R * C * K < min_terms
                        or R * C * K > (1 << 28)):
                    continue
                cells = [-1] * (R * C)
                ok = True
                for d in dots:
                    i = <Py_ssize_t>local_rows[row_of[d]] * C + <Py_ssize_t>local_cols[col_of[d]]
                    if cells[i] != -1 or self.d_height[d] != self.d_height[dots[0]]:
                        ok = False
                        break
                    cells[i] = d
                if not ok:
                    continue
                # eager backward meets later samples (columns) and neurons (rows) first
                row_order = sorted(range(R), key=lambda r: -self.tm[self.d_first[cells[r * C]]])
                col_order = sorted(range(C), key=lambda c: -self.tm[self.d_first[cells[c]]])
                cells = [cells[r * C + c] for r in row_order for c in col_order]
                base = 4 * (len(self.groups) + 1)
                if not self._disjoint(cells, R, C, K, stamp, <int32_t>base):
                    continue
                for d in cells:
                    self.d_group[d] = <int32_t>len(self.groups)
                self.groups.append((R, C, K, len(grid_cells)))
                grid_cells.extend(cells)
                total += 2 * R * C * K
        finally:
            free(stamp)
        self.grid = <int32_t *>_alloc(len(grid_cells), sizeof(int32_t))
        for i in range(len(grid_cells)):
            self.grid[i] = grid_cells[i]
        return total

    cdef list _vector_ids(self, const int32_t *v):
        """Number the dot products' operand vectors v[first:first + n] in order of first
        appearance, equal vectors alike (the rows' weights, or the columns' inputs). A hash of
        each vector, computed in C, finds the candidates and memcmp decides: no Python object
        per vector as a key would need."""
        cdef dict seen = {}  # hash -> the dot products that first showed each vector
        cdef list ids = [], firsts
        cdef Py_ssize_t d, e, f, n, found, count = 0
        for d in range(self.n_dots):
            f = self.d_first[d]
            n = self.d_n[d]
            key = _hash(v + f, n)
            firsts = seen.get(key)
            if firsts is None:
                firsts = seen[key] = []
            found = -1
            for e in firsts:
                if self.d_n[e] == n and memcmp(v + self.d_first[e], v + f, n * sizeof(int32_t)) == 0:
                    found = ids[e]
                    break
            if found < 0:
                found = count
                count += 1
                firsts.append(d)
            ids.append(found)
        return ids

    cdef bint _disjoint(self, list cells, Py_ssize_t R, Py_ssize_t C, Py_ssize_t K,
                        int32_t *stamp, int32_t base) except -1:
        """Whether the grid's weights, inputs, starts and sums are distinct slots (a start may
        serve several dot products: a neuron's bias): the kernels gather each into a buffer
        and scatter it back, which needs every weight and input slot to be met once."""
        cdef Py_ssize_t r, c, k, d, s
        for r in range(R):  # weights: row r's first operands
            d = cells[r * C]
            for k in range(K):
                s = self.ta[self.d_first[d] + k]
                if stamp[s] >= base:
                    return False
                stamp[s] = base
        for c in range(C):  # inputs: column c's second operands
            d = cells[c]
            for k in range(K):
                s = self.tb[self.d_first[d] + k]
                if stamp[s] >= base:
                    return False
                stamp[s] = base + 1
        for d in cells:
            s = self.d_start[d]
            if stamp[s] >= base and stamp[s] != base + 2:
                return False
            stamp[s] = base + 2
        for d in cells:
            s = self.L + self.P + d  # its sum
            if stamp[s] >= base:
                return False
            stamp[s] = base + 3
        return True

    # -- 4. units: a node, a dot product replayed alone (a chain), or a grid ------------------
    # Units are numbered plain nodes (by rank), then dot products, then grids: the tape's order
    # among the nodes, so the sorts below break ties as they would over tape indices.
    cdef inline Py_ssize_t unit_of(self, Py_ssize_t j) noexcept:
        cdef Py_ssize_t d = self.dot_of[j]
        if d < 0:
            return ~d
        if self.d_group[d] >= 0:
            return self.P + self.n_dots + self.d_group[d]
        return self.P + d

    cdef inline Py_ssize_t result_of(self, Py_ssize_t j) noexcept:
        """The compact slot of node j's result (a plain node, or a dot product's last add)."""
        cdef Py_ssize_t d = self.dot_of[j]
        return self.L + ~d if d < 0 else self.L + self.P + d

    cdef uint32_t step_of(self, Py_ssize_t u) noexcept:
        """A unit's program entry (a plain node's index: its rank)."""
        if u < self.P:
            return (<uint32_t>STEP_NODE << STEP_SHIFT) | <uint32_t>u
        if u < self.P + self.n_dots:
            return (<uint32_t>STEP_CHAIN << STEP_SHIFT) | <uint32_t>self.d_chain[u - self.P]
        return (<uint32_t>STEP_GROUP << STEP_SHIFT) | <uint32_t>(u - self.P - self.n_dots)

    cdef int plan_forward(self) except -1:
        """Every unit by height, ties in tape order (a counting sort)."""
        cdef Py_ssize_t U = self.P + self.n_dots + len(self.groups), j, u, d, h, max_h = 0
        cdef Py_ssize_t n_chains = 0, pos
        cdef int32_t *count
        cdef uint8_t *placed = <uint8_t *>_alloc(len(self.groups), sizeof(uint8_t), True)
        self.unit_height = <int32_t *>_alloc(U, sizeof(int32_t))
        self.chain_dot = <int32_t *>_alloc(self.n_dots, sizeof(int32_t))
        for u in range(U):
            self.unit_height[u] = -1  # not a unit (a grid's dot product)
        for d in range(self.n_dots):
            if self.d_group[d] < 0:
                self.d_chain[d] = <int32_t>n_chains
                self.chain_dot[n_chains] = <int32_t>d
                n_chains += 1
                self.unit_height[self.P + d] = self.d_height[d]
            else:
                self.unit_height[self.P + self.n_dots + self.d_group[d]] = self.d_height[d]
        self.n_steps = 0
        for u in range(self.P):
            self.unit_height[u] = self.height[self.L + u]
        for u in range(U):
            if self.unit_height[u] >= 0:
                self.n_steps += 1
                max_h = max(max_h, self.unit_height[u])
        count = <int32_t *>_alloc(max_h + 2, sizeof(int32_t), True)
        try:
            self.forward = <uint32_t *>_alloc(self.n_steps, sizeof(uint32_t))
            for u in range(U):
                if self.unit_height[u] >= 0:
                    count[self.unit_height[u] + 1] += 1
            for h in range(1, max_h + 2):
                count[h] += count[h - 1]
            for j in range(self.N):  # tape order within a height
                d = self.dot_of[j]
                if d >= 0 and self.L + j != self.d_out[d]:
                    continue
                u = self.unit_of(j)
                if u >= self.P + self.n_dots:
                    if placed[u - self.P - self.n_dots]:
                        continue
                    placed[u - self.P - self.n_dots] = True
                pos = count[self.unit_height[u]]
                count[self.unit_height[u]] += 1
                self.forward[pos] = self.step_of(u)
        finally:
            free(count)
            free(placed)
        return 0

    # -- 5. backward: who must come after whom -----------------------------------------------
    cdef int _edge(self, Py_ssize_t src, Py_ssize_t dst, int32_t *last_src) except -1:
        if last_src[dst] == src:  # the same pair again (a grid meets many)
            return 0
        last_src[dst] = <int32_t>src
        if self.n_edges == self.edge_cap:
            self.edge_cap = max(1024, 2 * self.edge_cap)
            grow_array(<void **>&self.edge_src, self.edge_cap, sizeof(int32_t))
            grow_array(<void **>&self.edge_dst, self.edge_cap, sizeof(int32_t))
        self.edge_src[self.n_edges] = <int32_t>src
        self.edge_dst[self.n_edges] = <int32_t>dst
        self.n_edges += 1
        return 0

    cdef int _contribute(self, Py_ssize_t s, Py_ssize_t u, int32_t *last_src) except -1:
        cdef int32_t w = self.last_unit[s]
        if w >= 0 and w != u:
            self._edge(w, u, last_src)
        self.last_unit[s] = <int32_t>u
        self.remaining[s] += 1
        return 0

    cdef int order_edges(self) except -1:
        """Walk eager backward's order (tape from the end, each node's operands a then b) and
        note, for every grad, which unit adds into it after which (and count its additions);
        then that every unit comes after the last unit adding into its own grad."""
        cdef Py_ssize_t U = self.P + self.n_dots + len(self.groups), j, u, d, t, res
        cdef int32_t *last_src = <int32_t *>_alloc(U, sizeof(int32_t))
        cdef int32_t *term = <int32_t *>_alloc(self.n_dots, sizeof(int32_t))
        try:
            for u in range(U):
                last_src[u] = -1
            for d in range(self.n_dots):  # each dot's terms are met last first
                term[d] = self.d_first[d] + self.d_n[d] - 1
            self.last_unit = <int32_t *>_alloc(self.SC, sizeof(int32_t))
            self.remaining = <int32_t *>_alloc(self.SC, sizeof(int32_t), True)
            for j in range(self.SC):
                self.last_unit[j] = -1
            for j in range(self.N - 1, -1, -1):
                u = self.unit_of(j)
                d = self.dot_of[j]
                if d < 0:  # a plain node
                    self._contribute(self.pa[~d], u, last_src)
                    if _arity(self.code[j]) == 2:
                        self._contribute(self.pb[~d], u, last_src)
                elif _op_of(self.code[j]) == MG_MUL:  # a dot product's term
                    t = term[d]
                    term[d] -= 1
                    self._contribute(self.ta[t], u, last_src)
                    self._contribute(self.tb[t], u, last_src)
                elif j == self.d_add0[d]:  # its first add: into the start
                    self._contribute(self.d_start[d], u, last_src)
            for j in range(self.N):  # a unit reads its grad once every addition is in
                d = self.dot_of[j]
                if d >= 0 and self.L + j != self.d_out[d]:
                    continue
                res = self.result_of(j)
                if self.last_unit[res] >= 0:
                    self._edge(self.last_unit[res], self.unit_of(j), last_src)
        finally:
            free(last_src)
            free(term)
        return 0

    cdef int plan_backward(self) except -1:
        """Kahn's topological sort of the units, highest first (so a grid's dot products,
        which share a height, become ready together). False if the edges hold a cycle: a grid
        whose dot products must be apart (its plan is then dropped)."""
        cdef Py_ssize_t U = self.P + self.n_dots + len(self.groups), e, u, v, h, done = 0
        cdef Py_ssize_t max_h = 0
        cdef int32_t *indeg = <int32_t *>_alloc(U, sizeof(int32_t), True)
        cdef int32_t *start = <int32_t *>_alloc(U + 1, sizeof(int32_t), True)
        cdef int32_t *succ = <int32_t *>_alloc(self.n_edges, sizeof(int32_t))
        cdef int32_t *nxt = <int32_t *>_alloc(U, sizeof(int32_t))
        cdef int32_t *head = NULL
        try:
            for e in range(self.n_edges):
                indeg[self.edge_dst[e]] += 1
                start[self.edge_src[e] + 1] += 1
            for u in range(U):
                start[u + 1] += start[u]
                max_h = max(max_h, self.unit_height[u])
            for e in range(self.n_edges):  # successors, grouped by source (a counting sort)
                succ[start[self.edge_src[e]]] = self.edge_dst[e]
                start[self.edge_src[e]] += 1
            for u in range(U - 1, -1, -1):
                start[u + 1] = start[u]
            start[0] = 0
            head = <int32_t *>_alloc(max_h + 1, sizeof(int32_t))
            for h in range(max_h + 1):
                head[h] = -1
            for u in range(U):
                if self.unit_height[u] >= 0 and indeg[u] == 0:
                    nxt[u] = head[self.unit_height[u]]
                    head[self.unit_height[u]] = <int32_t>u
            self.backward = <uint32_t *>_alloc(self.n_steps, sizeof(uint32_t))
            h = max_h
            while h >= 0:
                u = head[h]
                if u < 0:
                    h -= 1
                    continue
                head[h] = nxt[u]
                self.backward[done] = self.step_of(u)
                done += 1
                for e in range(start[u], start[u + 1]):
                    v = succ[e]
                    indeg[v] -= 1
                    if indeg[v] == 0:
                        nxt[v] = head[self.unit_height[v]]
                        head[self.unit_height[v]] = <int32_t>v
                        h = max(h, self.unit_height[v])
        finally:
            free(indeg)
            free(start)
            free(succ)
            free(nxt)
            free(head)
        return done == self.n_steps

    # -- 6. the check --------------------------------------------------------------------------
    cdef bint verify(self) except -1:
        """Replay the backward plan on paper: every grad must receive its additions in eager's
        order (a number per addition: its place in eager backward), and each unit read its grad
        only once all of them are in. Every step gives each grad its additions in the order its
        replay loop does."""
        cdef uint32_t *last = <uint32_t *>_alloc(self.SC, sizeof(uint32_t), True)
        cdef Py_ssize_t i, kind, index
        cdef bint ok = True
        try:
            for i in range(self.n_steps):
                kind = self.backward[i] >> STEP_SHIFT
                index = self.backward[i] & STEP_INDEX
                if kind == STEP_NODE:
                    ok = self._verify_node(index, last)
                elif kind == STEP_CHAIN:
                    ok = self._verify_chain(index, last)
                else:
                    ok = self._verify_group(index, last)
                if not ok:
                    return False
        finally:
            free(last)
        return True

    cdef inline bint _add(self, Py_ssize_t s, Py_ssize_t j, int operand, uint32_t *last) noexcept:
        """Grad s receives the addition eager makes at node j into its operand 0 or 1."""
        cdef uint32_t seq = <uint32_t>(2 * (self.N - 1 - j) + operand + 1)
        if seq <= last[s]:
            return False
        last[s] = seq
        self.remaining[s] -= 1
        return True

    cdef bint _verify_node(self, Py_ssize_t rank, uint32_t *last) noexcept:
        cdef Py_ssize_t j = self.plain_node[rank]
        if self.remaining[self.L + rank] != 0:
            return False
        if not self._add(self.pa[rank], j, 0, last):
            return False
        return _arity(self.code[j]) != 2 or self._add(self.pb[rank], j, 1, last)

    cdef bint _verify_chain(self, Py_ssize_t chain, uint32_t *last) noexcept:
        """_chain_backward's order: terms n-1 .. 1, the start, term 0."""
        cdef Py_ssize_t d = self.chain_dot[chain], t
        if self.remaining[self.L + self.P + d] != 0:
            return False
        for t in range(self.d_first[d] + self.d_n[d] - 1, self.d_first[d] - 1, -1):
            if t == self.d_first[d]:
                if not self._add(self.d_start[d], self.d_add0[d], 0 if self.d_sf[d] else 1, last):
                    return False
            if not (self._add(self.ta[t], self.tm[t], 0, last)
                    and self._add(self.tb[t], self.tm[t], 1, last)):
                return False
        return True

    cdef inline bint _add_terms(self, const int32_t *side, Py_ssize_t d, Py_ssize_t K, int operand,
                                uint32_t *last) noexcept:
        """_add for each of dot product d's K terms in order: its product's contribution to
        the grad of the operand on ``side`` (ta: the weight, operand 0; tb: the input, 1)."""
        cdef Py_ssize_t t
        for t in range(self.d_first[d], self.d_first[d] + K):
            if not self._add(side[t], self.tm[t], operand, last):
                return False
        return True

    cdef bint _verify_group(self, Py_ssize_t g, uint32_t *last) except -1:
        """The group step's order: each weight's grad gets its row's columns ascending, each
        input's its column's rows ascending, then the starts (columns, rows: a start that
        serves a whole layer, as eager builds it sample by sample). A grid's weights and inputs
        are distinct slots (_disjoint), so only each one's own sequence counts, not how the
        kernels interleave them: the loops read each dot product's terms in a row."""
        cdef Py_ssize_t R, C, K, off, r, c, d, i
        R, C, K, off = self.groups[g]
        for i in range(R * C):
            if self.remaining[self.L + self.P + self.grid[off + i]] != 0:
                return False
        for r in range(R):
            for c in range(C):
                if not self._add_terms(self.ta, self.grid[off + r * C + c], K, 0, last):
                    return False
        for c in range(C):
            for r in range(R):
                if not self._add_terms(self.tb, self.grid[off + r * C + c], K, 1, last):
                    return False
        for c in range(C):
            for r in range(R):
                d = self.grid[off + r * C + c]
                if not self._add(self.d_start[d], self.d_add0[d], 0 if self.d_sf[d] else 1, last):
                    return False
        return True

    # -- 7. hand over ----------------------------------------------------------------------
    cdef int fill(self, MatrixPlan *plan, const int32_t *outputs, Py_ssize_t n_outputs,
                  const double *data) except -1:
        """Fill plan in its own slots (see MatrixPlan); False, plan emptied, if a step would
        read a slot that has none (never expected: the check keeps a plan from a bug)."""
        cdef int32_t *live = <int32_t *>_alloc(self.SC, sizeof(int32_t))
        cdef int32_t *record = <int32_t *>_alloc(self.P, sizeof(int32_t))
        cdef Py_ssize_t i
        cdef bint ok
        try:
            self._number_slots(plan, live, record)
            ok = self._fill_steps(plan, live, record)
            plan.root = self._live(live, self.S - 1)
            ok &= plan.root >= 0
            plan.output_slots = <int32_t *>_alloc(n_outputs, sizeof(int32_t))
            for i in range(n_outputs):
                plan.output_slots[i] = self._live(live, outputs[i])
                ok &= plan.output_slots[i] >= 0
            if not ok:
                free_plan(plan)
                return False
            plan.data = <double *>_alloc(plan.n_live, sizeof(double))
            for i in range(self.SC):
                if live[i] >= 0:
                    plan.data[live[i]] = data[self.tape_slot(i)]
        finally:
            free(live)
            free(record)
        return True

    cdef inline int32_t _live(self, const int32_t *live, Py_ssize_t s) noexcept:
        """Tape slot s's slot in the plan, or -1."""
        cdef Py_ssize_t c = self.compact(s)
        return live[c] if c >= 0 else -1

    cdef int _number_slots(self, MatrixPlan *plan, int32_t *live, int32_t *record) except -1:
        """live[compact slot] = the slot's number in the plan (leaves keep theirs, then every
        step's results in forward order; -1: none); record[rank] = plain node rank's place
        among the node steps."""
        cdef Py_ssize_t i, j, index, pos = self.L, R, C, K, off, d
        cdef uint32_t step
        for i in range(self.SC):
            live[i] = <int32_t>i if i < self.L else -1
        for i in range(self.n_steps):
            step = self.forward[i]
            index = step & STEP_INDEX
            if step >> STEP_SHIFT == STEP_NODE:
                record[index] = <int32_t>plan.n_nodes
                plan.n_nodes += 1
                live[self.L + index] = <int32_t>pos
                pos += 1
            elif step >> STEP_SHIFT == STEP_CHAIN:
                live[self.L + self.P + self.chain_dot[index]] = <int32_t>pos
                pos += 1
            else:
                R, C, K, off = self.groups[index]
                # in tape order (sample by sample, for a layer), the order in which the nodes
                # that read them come in the forward plan: they read slots side by side
                for d in sorted([self.grid[off + j] for j in range(R * C)],
                                key=lambda d: self.d_out[d]):
                    live[self.L + self.P + d] = <int32_t>pos
                    pos += 1
        plan.n_live = pos
        return 0

    cdef bint _fill_steps(self, MatrixPlan *plan, const int32_t *live, const int32_t *record) except -1:
        cdef Py_ssize_t d, c, n_terms = 0, g, R, C, K, off, i, n_slots = 0, t, r, j
        cdef Py_ssize_t pos = 0, work = 0
        cdef MatrixGroup *grp
        cdef bint ok = True
        for d in range(self.n_dots):
            if self.d_group[d] < 0:
                plan.n_chains += 1
                n_terms += self.d_n[d]
            else:
                plan.grouped_dots += 1
                plan.grouped_terms += self.d_n[d]
        for R, C, K, off in self.groups:
            n_slots += R * K + C * K + 2 * R * C
            work = max(work, 2 * (R * K + C * K) + 2 * R * C + mg_mm_scratch_doubles(R, C, K))
        plan.node_code = <uint8_t *>_alloc(plan.n_nodes, sizeof(uint8_t))
        plan.node_a = <int32_t *>_alloc(plan.n_nodes, sizeof(int32_t))
        plan.node_b = <int32_t *>_alloc(plan.n_nodes, sizeof(int32_t))
        plan.node_out = <int32_t *>_alloc(plan.n_nodes, sizeof(int32_t))
        for r in range(self.P):
            j = self.plain_node[r]
            i = record[r]
            plan.node_code[i] = self.code[j]
            plan.node_a[i] = live[self.pa[r]]
            ok &= plan.node_a[i] >= 0
            if _arity(self.code[j]) == 2:
                plan.node_b[i] = live[self.pb[r]]
                ok &= plan.node_b[i] >= 0
            else:  # an exponent's index (powc), or unused
                plan.node_b[i] = self.b[j]
            plan.node_out[i] = live[self.L + r]
        plan.chains = <Chain *>_alloc(plan.n_chains, sizeof(Chain))
        plan.chain_out = <int32_t *>_alloc(plan.n_chains, sizeof(int32_t))
        plan.ta = <int32_t *>_alloc(n_terms, sizeof(int32_t))
        plan.tb = <int32_t *>_alloc(n_terms, sizeof(int32_t))
        for c in range(plan.n_chains):
            d = self.chain_dot[c]
            plan.chains[c].first = <int32_t>plan.n_terms
            plan.chains[c].n = self.d_n[d]
            plan.chains[c].start = live[self.d_start[d]]
            plan.chains[c].start_first = self.d_sf[d]
            plan.chain_out[c] = live[self.L + self.P + d]
            ok &= plan.chains[c].start >= 0
            for t in range(self.d_first[d], self.d_first[d] + self.d_n[d]):
                plan.ta[plan.n_terms] = live[self.ta[t]]
                plan.tb[plan.n_terms] = live[self.tb[t]]
                ok &= plan.ta[plan.n_terms] >= 0 and plan.tb[plan.n_terms] >= 0
                plan.n_terms += 1
        plan.groups = <MatrixGroup *>_alloc(len(self.groups), sizeof(MatrixGroup))
        plan.slots = <int32_t *>_alloc(n_slots, sizeof(int32_t))
        for g in range(len(self.groups)):
            R, C, K, off = self.groups[g]
            grp = &plan.groups[g]
            grp.R = <int32_t>R
            grp.C = <int32_t>C
            grp.K = <int32_t>K
            grp.w = pos
            for r in range(R):
                d = self.grid[off + r * C]
                for t in range(self.d_first[d], self.d_first[d] + K):
                    plan.slots[pos] = live[self.ta[t]]
                    pos += 1
            grp.x = pos
            for c in range(C):
                d = self.grid[off + c]
                for t in range(self.d_first[d], self.d_first[d] + K):
                    plan.slots[pos] = live[self.tb[t]]
                    pos += 1
            grp.s = pos
            for c in range(C):  # column by column (see MatrixGroup)
                for r in range(R):
                    plan.slots[pos] = live[self.d_start[self.grid[off + r * C + c]]]
                    pos += 1
            grp.row_starts = _row_starts(plan.slots + grp.s, R, C)
            grp.o = pos
            for c in range(C):  # column by column (see MatrixGroup)
                for r in range(R):
                    plan.slots[pos] = live[self.L + self.P + self.grid[off + r * C + c]]
                    pos += 1
        for i in range(n_slots):
            ok &= plan.slots[i] >= 0
        plan.n_groups = len(self.groups)
        plan.n_slots = n_slots
        plan.workspace = work
        for i in range(self.n_steps):  # node steps index their records
            if self.forward[i] >> STEP_SHIFT == STEP_NODE:
                self.forward[i] = (<uint32_t>STEP_NODE << STEP_SHIFT) | <uint32_t>record[self.forward[i] & STEP_INDEX]
            if self.backward[i] >> STEP_SHIFT == STEP_NODE:
                self.backward[i] = (<uint32_t>STEP_NODE << STEP_SHIFT) | <uint32_t>record[self.backward[i] & STEP_INDEX]
        plan.forward = self.forward
        plan.backward = self.backward
        plan.n_steps = self.n_steps
        self.forward = self.backward = NULL
        return ok


cdef bint _row_starts(const int32_t *starts, Py_ssize_t R, Py_ssize_t C):
    """Whether every row of this grid of start slots (column by column: row r of column c at
    c*R + r) holds one slot, its own."""
    cdef Py_ssize_t r, c
    seen = set()
    for r in range(R):
        for c in range(1, C):
            if starts[c * R + r] != starts[r]:
                return False
        seen.add(starts[r])
    return len(seen) == R


cdef inline uint64_t _hash(const int32_t *v, Py_ssize_t n) noexcept:
    """FNV-1a over a vector of slots, with its length (only to spread dict keys), in four
    lanes: each lane's multiplies wait on one another, the lanes' do not."""
    cdef uint64_t h[4]
    cdef Py_ssize_t i
    for i in range(4):
        h[i] = (14695981039346656037ULL + <uint64_t>i) ^ <uint64_t>n
    for i in range(n):
        h[i & 3] = (h[i & 3] ^ <uint32_t>v[i]) * 1099511628211ULL
    return h[0] ^ (h[1] * 31) ^ (h[2] * 961) ^ (h[3] * 29791)


cdef Py_ssize_t _find(list parent, Py_ssize_t i):
    cdef Py_ssize_t root = i, nxt
    while parent[root] != root:
        root = parent[root]
    while parent[i] != root:  # path compression
        nxt = parent[i]
        parent[i] = root
        i = nxt
    return root


cdef int grow_array(void **array, Py_ssize_t n, size_t item) except -1:
    """Reallocate array[0] to n items (at least one), keeping its contents (the tape's capture
    and the planner grow their arrays with it; planning is part of capturing)."""
    cdef void *grown = realloc(array[0], max(n, 1) * item)
    if grown == NULL:
        raise MemoryError("Tape: out of memory capturing the graph")
    array[0] = grown
    return 0


cdef int plan_matrices(MatrixPlan *plan, Py_ssize_t n_leaves, Py_ssize_t n_interior,
                       const uint8_t *code, const int32_t *a, const int32_t *b,
                       const int32_t *outputs, Py_ssize_t n_outputs, const double *data) except -1:
    """Fill plan and return 1 if the tape should replay by it; else return 0, plan untouched.
    code holds the tape's codes (pairs marked, no dot runs)."""
    cdef Py_ssize_t S = n_leaves + n_interior, j, grouped
    cdef uint8_t *uses
    cdef _Planner p
    if n_interior < THRESHOLDS["nodes"] or S >= MAX_SLOTS:
        return 0
    p = _Planner()
    p.L = n_leaves
    p.N = n_interior
    p.S = S
    p.code = code
    p.a = a
    p.b = b
    uses = <uint8_t *>_alloc(S, sizeof(uint8_t), True)
    try:
        for j in range(n_interior):
            uses[a[j]] = min(uses[a[j]] + 1, 255)
            if _arity(code[j]) == 2:
                uses[b[j]] = min(uses[b[j]] + 1, 255)
        for j in range(n_outputs):
            uses[outputs[j]] = min(uses[outputs[j]] + 1, 255)
        p.find_runs(uses)
        if p.n_runs == 0 or 2 * p.terms_in_runs() * THRESHOLDS["share"] < n_interior:
            return 0  # even grids of every product and add would hold too few nodes
        p.link_runs(uses)
    finally:
        free(uses)
    p.make_dots()
    if not p.number_compactly():
        return 0
    p.measure_heights()
    grouped = p.find_grids()
    if not p.groups or grouped * THRESHOLDS["share"] < n_interior:
        return 0
    p.plan_forward()
    p.order_edges()
    if not p.plan_backward() or not p.verify():
        return 0
    return 1 if p.fill(plan, outputs, n_outputs, data) else 0
