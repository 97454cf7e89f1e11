/* PLACEHOLDER (lead's branch): naive reference kernels with m1's API; replaced by m1's header. */
#ifndef MICROGRAD_MATMUL_H
#define MICROGRAD_MATMUL_H
#include <stddef.h>
static ptrdiff_t mg_mm_scratch_doubles(ptrdiff_t R, ptrdiff_t C, ptrdiff_t K) { (void)R; (void)C; (void)K; return 1; }
static void mg_mm_forward(ptrdiff_t R, ptrdiff_t C, ptrdiff_t K, const double *W, const double *X,
                          const double *S, double *out, double *scratch) {
    ptrdiff_t r, c, k; (void)scratch;
    for (r = 0; r < R; r++) for (c = 0; c < C; c++) {
        double acc = S[r * C + c] + W[r * K] * X[c * K];
        for (k = 1; k < K; k++) acc = acc + W[r * K + k] * X[c * K + k];
        out[r * C + c] = acc;
    }
}
static void mg_mm_backward_w(ptrdiff_t R, ptrdiff_t C, ptrdiff_t K, const double *X, const double *G,
                             double *dW, double *scratch) {
    ptrdiff_t r, c, k; (void)scratch;
    for (r = 0; r < R; r++) for (c = 0; c < C; c++) for (k = 0; k < K; k++)
        dW[r * K + k] = dW[r * K + k] + X[c * K + k] * G[r * C + c];
}
static void mg_mm_backward_x(ptrdiff_t R, ptrdiff_t C, ptrdiff_t K, const double *W, const double *G,
                             double *dX, double *scratch) {
    ptrdiff_t r, c, k; (void)scratch;
    for (c = 0; c < C; c++) for (r = 0; r < R; r++) for (k = 0; k < K; k++)
        dX[c * K + k] = dX[c * K + k] + W[r * K + k] * G[r * C + c];
}
#endif
