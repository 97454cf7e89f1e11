# The tape's batched dot-product kernels (micrograd/_matmul.h): bit for bit the scalar loop.
# Row-major doubles; G is R x C; scratch holds mg_mm_scratch_doubles(R, C, K) doubles.
from libc.stddef cimport ptrdiff_t

cdef extern from "_matmul.h" nogil:
    enum:
        MG_MM_ISA_C
        MG_MM_ISA_VEC128
        MG_MM_ISA_AVX2
        MG_MM_ISA_AVX512
        MG_MM_N_ISA

    # out[r,c] = S[r,c] + W[r,0]*X[c,0] + ... + W[r,K-1]*X[c,K-1], added left to right
    void mg_mm_forward(ptrdiff_t R, ptrdiff_t C, ptrdiff_t K, const double *W, const double *X,
                       const double *S, double *out, double *scratch)
    # dW[r,k] += X[c,k]*G[r,c] for c = 0..C-1 in order
    void mg_mm_backward_w(ptrdiff_t R, ptrdiff_t C, ptrdiff_t K, const double *X, const double *G,
                          double *dW, double *scratch)
    # dX[c,k] += W[r,k]*G[r,c] for r = 0..R-1 in order
    void mg_mm_backward_x(ptrdiff_t R, ptrdiff_t C, ptrdiff_t K, const double *W, const double *G,
                          double *dX, double *scratch)
    ptrdiff_t mg_mm_scratch_doubles(ptrdiff_t R, ptrdiff_t C, ptrdiff_t K)

    # the instruction-set path: chosen automatically; forced by tests and benchmarks only
    int mg_mm_isa()
    int mg_mm_isa_available(int level)
    int mg_mm_force_isa(int level)
    const char *mg_mm_isa_name(int level)
