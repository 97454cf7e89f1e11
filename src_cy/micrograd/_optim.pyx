"""The optimizers' C loops over compiled-engine parameters (used by micrograd.optim).

Each loop is the Python loop of micrograd/optim.py written in C: the same operations in the
same order on the same doubles (built with -ffp-contract=off, sqrt is IEEE's correctly rounded
square root as Python's math.sqrt), so the results are the same bits. micrograd.optim checks
every argument before calling in; nothing here can fail halfway through a loop.

ParamPointers holds, for one list of parameters, C arrays of pointers to each Value's data and
grad, built once; ``matches()`` tells whether the list still holds exactly those Values, so
the optimizer rebuilds it when the user changed the list.

The GIL is released around loops of at least NOGIL_MIN parameters. That is safe: the loops
touch only doubles inside Values that ``_keep`` holds alive, and inside buffers whose memory a
typed memoryview pins (an array('d') cannot be resized while it exports a buffer). Another
thread writing the same Values meanwhile races on doubles, never on memory.
"""
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.ref cimport PyObject
from libc.math cimport fabs, sqrt
from libc.stdlib cimport free, malloc

from micrograd._engine cimport Value

# Below this many parameters a loop takes ~1 us: releasing and retaking the GIL would cost
# about as much, and a waiting thread could then hold the GIL for its switch interval.
NOGIL_MIN = 2048
cdef Py_ssize_t _NOGIL_MIN = NOGIL_MIN


def zero_grads(list params):
    """Set the grad of every Value in ``params`` to 0.0 and return True, if all are
    compiled-engine Values; else change nothing and return False."""
    cdef Py_ssize_t i, n = PyList_GET_SIZE(params)
    for i in range(n):
        if type(<object>PyList_GET_ITEM(params, i)) is not Value:
            return False
    for i in range(n):
        (<Value>PyList_GET_ITEM(params, i))._grad = 0.0
    return True


def first_negative(double[::1] buf):
    """The first index of a negative entry of ``buf``, or -1 (NaN is not negative)."""
    cdef Py_ssize_t i
    for i in range(buf.shape[0]):
        if buf[i] < 0.0:
            return i
    return -1


cdef double *_buffer(double[::1] buf, Py_ssize_t n, str what) except? NULL:
    """The memory of one buffer of ``n`` doubles (NULL for None or n == 0)."""
    if buf is None:
        return NULL
    if buf.shape[0] != n:  # checked by micrograd.optim already; a resize by another thread since
        raise ValueError(f"optimizer buffer {what} has {buf.shape[0]} entries for {n} parameters")
    return &buf[0] if n else NULL


cdef class ParamPointers:
    """C arrays of pointers to the data and grad of a list of compiled-engine Values."""

    cdef tuple _keep            # owns the Values while the pointers exist
    cdef PyObject **_objs       # the Values, to compare with a list (borrowed from _keep)
    cdef double **_data
    cdef double **_grad
    cdef readonly Py_ssize_t n

    def __cinit__(self):
        self._objs = NULL
        self._data = NULL
        self._grad = NULL
        self.n = 0

    def __dealloc__(self):
        free(self._objs)
        free(self._data)
        free(self._grad)

    @staticmethod
    def build(list params):
        """The pointers for ``params``, or None unless every item is a compiled-engine Value."""
        cdef Py_ssize_t i, n = PyList_GET_SIZE(params)
        cdef ParamPointers pp
        cdef Value v
        for i in range(n):
            if type(<object>PyList_GET_ITEM(params, i)) is not Value:
                return None
        pp = ParamPointers.__new__(ParamPointers)
        pp._keep = tuple(params)
        n = len(pp._keep)
        pp._objs = <PyObject **>malloc(max(n, 1) * sizeof(PyObject *))
        pp._data = <double **>malloc(max(n, 1) * sizeof(double *))
        pp._grad = <double **>malloc(max(n, 1) * sizeof(double *))
        if pp._objs == NULL or pp._data == NULL or pp._grad == NULL:
            raise MemoryError()
        for i in range(n):
            v = <Value>pp._keep[i]
            pp._objs[i] = <PyObject *>v
            pp._data[i] = &v._data
            pp._grad[i] = &v._grad
        pp.n = n
        return pp

    def matches(self, list params):
        """True when ``params`` holds exactly these Values, in this order."""
        cdef Py_ssize_t i
        if PyList_GET_SIZE(params) != self.n:
            return False
        for i in range(self.n):
            if PyList_GET_ITEM(params, i) != self._objs[i]:
                return False
        return True

    def zero_grad(self):
        if self.n >= _NOGIL_MIN:
            with nogil:
                _zero(self._grad, self.n)
        else:
            _zero(self._grad, self.n)

    def sgd_step(self, double lr, double momentum, double dampening, double weight_decay, bint nesterov,
                 bint maximize, bint first, double[::1] bufs):
        """SGD.step()'s loop. ``bufs`` is the momentum buffer (None when momentum == 0)."""
        cdef double *buf = _buffer(bufs, self.n, "momentum_buffer")
        if momentum != 0 and buf == NULL and self.n:
            raise ValueError("SGD with momentum needs a momentum buffer")
        if self.n >= _NOGIL_MIN:
            with nogil:
                _sgd(self._data, self._grad, self.n, lr, momentum, dampening, weight_decay, nesterov, maximize,
                     first, buf)
        else:
            _sgd(self._data, self._grad, self.n, lr, momentum, dampening, weight_decay, nesterov, maximize,
                 first, buf)

    def adam_step(self, double lr, double beta1, double beta2, double eps, double weight_decay, bint maximize,
                  bint decoupled, double step_size, double bias_correction2_sqrt, double[::1] exp_avg,
                  double[::1] exp_avg_sq, double[::1] max_exp_avg_sq):
        """Adam.step()'s loop; ``max_exp_avg_sq`` is None without amsgrad."""
        cdef double *m = _buffer(exp_avg, self.n, "exp_avg")
        cdef double *v = _buffer(exp_avg_sq, self.n, "exp_avg_sq")
        cdef double *v_max = _buffer(max_exp_avg_sq, self.n, "max_exp_avg_sq")
        if self.n and (m == NULL or v == NULL):
            raise ValueError("Adam needs its exp_avg and exp_avg_sq buffers")
        cdef bint amsgrad = max_exp_avg_sq is not None
        if self.n >= _NOGIL_MIN:
            with nogil:
                _adam(self._data, self._grad, self.n, lr, beta1, beta2, eps, weight_decay, maximize, decoupled,
                      step_size, bias_correction2_sqrt, m, v, v_max, amsgrad)
        else:
            _adam(self._data, self._grad, self.n, lr, beta1, beta2, eps, weight_decay, maximize, decoupled,
                  step_size, bias_correction2_sqrt, m, v, v_max, amsgrad)


cdef void _zero(double **grad, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        grad[i][0] = 0.0


cdef void _sgd(double **data, double **grad, Py_ssize_t n, double lr, double momentum, double dampening,
               double weight_decay, bint nesterov, bint maximize, bint first, double *bufs) noexcept nogil:
    # Line for line SGD.step()'s Python loop.
    cdef Py_ssize_t i
    cdef double g, buf
    for i in range(n):
        g = -grad[i][0] if maximize else grad[i][0]
        if weight_decay != 0:
            g = g + weight_decay * data[i][0]
        if momentum != 0:
            buf = g if first else bufs[i] * momentum + (1 - dampening) * g
            bufs[i] = buf
            g = g + momentum * buf if nesterov else buf
        data[i][0] = data[i][0] + -lr * g


cdef inline double _lerp(double start, double end, double weight) noexcept nogil:
    # micrograd.optim._lerp (torch's lerp)
    if fabs(weight) < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * (1 - weight)


cdef void _adam(double **data, double **grad, Py_ssize_t n, double lr, double beta1, double beta2, double eps,
                double weight_decay, bint maximize, bint decoupled, double step_size,
                double bias_correction2_sqrt, double *m, double *v, double *v_max, bint amsgrad) noexcept nogil:
    # Line for line Adam.step()'s Python loop. Python's max(a, b) is `b if b > a else a`.
    cdef Py_ssize_t i
    cdef double g, second, denom
    for i in range(n):
        g = -grad[i][0] if maximize else grad[i][0]
        if weight_decay != 0:
            if decoupled:
                data[i][0] = data[i][0] * (1 - lr * weight_decay)
            else:
                g = g + weight_decay * data[i][0]
        m[i] = _lerp(m[i], g, 1 - beta1)
        v[i] = v[i] * beta2 + (1 - beta2) * g * g
        second = v[i]
        if amsgrad:
            second = second if second > v_max[i] else v_max[i]
            v_max[i] = second
        denom = sqrt(second) / bias_correction2_sqrt + eps
        data[i][0] = data[i][0] + -step_size * m[i] / denom
