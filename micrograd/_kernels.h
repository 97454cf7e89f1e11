/* micrograd/_kernels.h: every op's forward and backward rule, written once in C.
 *
 * The twin of micrograd/kernels.py: the same operations in the same order, so that (built with
 * -ffp-contract=off: no fused multiply-add) both give the same bits. The compiled engine
 * (_engine.pyx), the compiled tape (_tape.pyx, through _kernels.pxd) and the bench's C floor
 * include it. It is shipped inside the package: find it with micrograd.kernels_include_dir().
 *
 * Each op has a forward function and its local derivatives, side by side. Every backward rule
 * is `operand.grad += local * out.grad`, operands in order (microgpt's `_local_grads`). The
 * dispatchers at the end (mg_forward, mg_local_grads, mg_backward) switch over the op codes
 * and return MG_UNKNOWN_OP for a code they do not know: never another op's formula.
 *
 * To add an op: docs/adding-an-op.md.
 */
#ifndef MICROGRAD_KERNELS_H
#define MICROGRAD_KERNELS_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Inlined into the engines' loops, where a call per node would cost more than the op. */
#if defined(__GNUC__) || defined(__clang__)
#define MG_INLINE static inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define MG_INLINE static __forceinline
#else
#define MG_INLINE static inline
#endif

/* Op codes: equal to micrograd/_ops.py OPS (micrograd._engine checks MG_OP_NAMES against it
   when it loads). */
enum {
    MG_LEAF = 0, MG_ADD = 1, MG_MUL = 2, MG_POWC = 3, MG_POW = 4, MG_RELU = 5, MG_TANH = 6,
    MG_EXP = 7, MG_LOG = 8, MG_SIGMOID = 9, MG_ABS = 10,
    MG_N_OPS = 11
};
#define MG_OP_NAMES "leaf add mul powc pow relu tanh exp log sigmoid abs"

/* What the dispatchers return. */
enum { MG_OK = 0, MG_RAISES = 1, MG_UNKNOWN_OP = -1 };

/* -- add: out = a + b; d/da = 1, d/db = 1 ------------------------------------------------------ */
MG_INLINE double mg_add(double a, double b) { return a + b; }

/* -- mul: out = a * b; d/da = b, d/db = a ------------------------------------------------------ */
MG_INLINE double mg_mul(double a, double b) { return a * b; }

/* -- pow and powc: out = a ** k; d/da = k * a**(k-1); d/dk = out * log(a) ---------------------
   Forward fails (MG_RAISES) where Python's float raises: 0 ** finite negative, negative **
   fractional, a finite result too large (0 ** -inf is inf, as Python's float gives). Backward uses pow() as it is: inf or nan, never an error. */
MG_INLINE int mg_pow(double x, double k, double *out) {
    double r;
    if ((x == 0.0 && k < 0.0 && isfinite(k)) || (x < 0.0 && isfinite(x) && isfinite(k) && k != floor(k)))
        return MG_RAISES;
    r = pow(x, k);
    if (isinf(r) && isfinite(x) && isfinite(k))
        return MG_RAISES;
    *out = r;
    return MG_OK;
}
MG_INLINE double mg_pow_da(double x, double k) { return k * pow(x, k - 1.0); }
/* 0 where x == 0 and k >= 0 (as PyTorch), nan for x < 0 */
MG_INLINE double mg_pow_dk(double x, double k, double out) {
    if (x > 0.0) return out * log(x);
    if (x == 0.0 && k >= 0.0) return 0.0;
    return NAN;
}

/* -- relu: out = 0 if a < 0 else a; d/da = 1 if out > 0 else 0 ---------------------------------
   Written without a branch: a layer's inputs are negative half the time, and a mispredicted
   branch per node costs more than the op (x's bits, kept or cleared to +0.0's; nan and -0.0
   are kept, as `x < 0 ? 0.0 : x` keeps them). */
MG_INLINE double mg_relu(double x) {
    uint64_t bits, keep = (uint64_t)0 - (uint64_t)!(x < 0); /* all ones, unless x < 0 */
    memcpy(&bits, &x, sizeof bits);
    bits &= keep;
    memcpy(&x, &bits, sizeof x);
    return x;
}
MG_INLINE double mg_relu_da(double out) { return (double)(out > 0); } /* 1.0 or 0.0, no branch */

/* -- tanh: out = tanh(a); d/da = 1 - out*out ---------------------------------------------------- */
MG_INLINE double mg_tanh(double x) { return tanh(x); }
MG_INLINE double mg_tanh_da(double out) { return 1.0 - out * out; }

/* -- exp: out = exp(a); d/da = out. Fails where a finite a overflows. -------------------------- */
MG_INLINE int mg_exp(double x, double *out) {
    double r = exp(x);
    if (isinf(r) && isfinite(x)) return MG_RAISES;
    *out = r;
    return MG_OK;
}

/* -- log: out = log(a); d/da = 1 / a (as microgpt: (1/a) * g, not g / a). Fails for a <= 0. ---- */
MG_INLINE int mg_log(double x, double *out) {
    if (x <= 0.0) return MG_RAISES;
    *out = log(x);
    return MG_OK;
}
MG_INLINE double mg_log_da(double x) { return 1.0 / x; }

/* -- sigmoid: out = 1 / (1 + exp(-a)), in a form that never overflows; d/da = out * (1 - out) -- */
MG_INLINE double mg_sigmoid(double x) {
    double e;
    if (x >= 0.0) return 1.0 / (1.0 + exp(-x));
    e = exp(x);  /* exp(-x) could overflow here; this form cannot */
    return e / (1.0 + e);
}
MG_INLINE double mg_sigmoid_da(double out) { return out * (1.0 - out); }

/* -- abs: out = |a|; d/da = sign(a): 1, -1, 0 at a == 0 (as PyTorch), nan for nan ---------------- */
MG_INLINE double mg_abs(double x) { return fabs(x); }
MG_INLINE double mg_abs_da(double x) { return x > 0.0 ? 1.0 : (x < 0.0 ? -1.0 : (x == 0.0 ? 0.0 : x)); }

/* -- dispatch ------------------------------------------------------------------------------------ */

/* Value operands of an op: 2 for add, mul, pow; 1 for the others (powc's exponent is a
   constant); 0 for a leaf; -1 for an unknown code. */
MG_INLINE int mg_arity(int op) {
    switch (op) {
    case MG_ADD: case MG_MUL: case MG_POW: return 2;
    case MG_POWC: case MG_RELU: case MG_TANH: case MG_EXP: case MG_LOG: case MG_SIGMOID: case MG_ABS:
        return 1;
    case MG_LEAF: return 0;
    default: return -1;
    }
}

/* *out = op(x, y), y being b's data (binary ops) or the constant exponent (powc), unused
   otherwise. MG_OK; MG_RAISES where eager mode raises (*out untouched: the caller asks
   micrograd.kernels.forward_error for the exception); MG_UNKNOWN_OP. */
MG_INLINE int mg_forward(int op, double x, double y, double *out) {
    switch (op) {
    case MG_ADD: *out = mg_add(x, y); return MG_OK;
    case MG_MUL: *out = mg_mul(x, y); return MG_OK;
    case MG_POWC: case MG_POW: return mg_pow(x, y, out);
    case MG_RELU: *out = mg_relu(x); return MG_OK;
    case MG_TANH: *out = mg_tanh(x); return MG_OK;
    case MG_EXP: return mg_exp(x, out);
    case MG_LOG: return mg_log(x, out);
    case MG_SIGMOID: *out = mg_sigmoid(x); return MG_OK;
    case MG_ABS: *out = mg_abs(x); return MG_OK;
    default: return MG_UNKNOWN_OP;
    }
}

/* The local derivatives d(out)/d(a) and d(out)/d(b) of a node of op `op` whose operands hold
   x and y (y as in mg_forward) and whose value is out. *db is set for binary ops only.
   MG_OK, or MG_UNKNOWN_OP (the leaf included: it has no rule). */
MG_INLINE int mg_local_grads(int op, double x, double y, double out, double *da, double *db) {
    switch (op) {
    case MG_ADD: *da = 1.0; *db = 1.0; return MG_OK;
    case MG_MUL: *da = y; *db = x; return MG_OK;
    case MG_POWC: *da = mg_pow_da(x, y); return MG_OK;
    case MG_POW: *da = mg_pow_da(x, y); *db = mg_pow_dk(x, y, out); return MG_OK;
    case MG_RELU: *da = mg_relu_da(out); return MG_OK;
    case MG_TANH: *da = mg_tanh_da(out); return MG_OK;
    case MG_EXP: *da = out; return MG_OK;
    case MG_LOG: *da = mg_log_da(x); return MG_OK;
    case MG_SIGMOID: *da = mg_sigmoid_da(out); return MG_OK;
    case MG_ABS: *da = mg_abs_da(x); return MG_OK;
    default: return MG_UNKNOWN_OP;
    }
}

/* One node's backward, as the engines' loops run it: *ga += d(out)/da * g, then (binary ops)
   *gb += d(out)/db * g, with the local derivatives of mg_local_grads (mul's are y and x;
   add's are 1, and 1 * g is g). ga and gb may be the same place (a * a): the two additions
   happen in that order. MG_OK, or MG_UNKNOWN_OP (the leaf included). */
MG_INLINE int mg_backward(int op, double x, double y, double out, double g, double *ga, double *gb) {
    switch (op) {
    case MG_ADD: *ga += g; *gb += g; return MG_OK;
    case MG_MUL: *ga += y * g; *gb += x * g; return MG_OK;
    case MG_POWC: *ga += mg_pow_da(x, y) * g; return MG_OK;
    case MG_POW: *ga += mg_pow_da(x, y) * g; *gb += mg_pow_dk(x, y, out) * g; return MG_OK;
    case MG_RELU: *ga += mg_relu_da(out) * g; return MG_OK;
    case MG_TANH: *ga += mg_tanh_da(out) * g; return MG_OK;
    case MG_EXP: *ga += out * g; return MG_OK;
    case MG_LOG: *ga += mg_log_da(x) * g; return MG_OK;
    case MG_SIGMOID: *ga += mg_sigmoid_da(out) * g; return MG_OK;
    case MG_ABS: *ga += mg_abs_da(x) * g; return MG_OK;
    default: return MG_UNKNOWN_OP;
    }
}

#endif /* MICROGRAD_KERNELS_H */
