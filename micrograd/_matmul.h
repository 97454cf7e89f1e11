/* micrograd/_matmul.h: a layer of dot products over a batch, forward and backward, bit for bit
 * as the scalar loop computes them.
 *
 * The compiled tape (_tape.pyx) replays Karpathy's Neuron, `sum((wi*xi for ...), b)`, as
 * `acc = start; acc = acc + w0*x0; acc = acc + w1*x1; ...`: one multiply rounding, then one add
 * rounding, terms in order. These kernels compute R x C such accumulators at once and keep every
 * accumulator's order: the speed comes only from running many independent accumulators side by
 * side (SIMD lanes across accumulators, a register tile of them), never from reordering a sum
 * and never from a fused multiply-add. Build with -ffp-contract=off (gcc/clang) or /fp:precise
 * (MSVC), as setup.py does: with contraction on, `acc + a*b` may become one fma and the bits
 * change (tests/test_matmul_kernels.py would see it).
 *
 * Row-major doubles, sizes >= 1. G (the output's gradient) is R x C.
 *
 *   mg_mm_forward    out[r,c] = S[r,c] + W[r,0]*X[c,0] + W[r,1]*X[c,1] + ... (k = 0..K-1, in order)
 *   mg_mm_backward_w dW[r,k] += X[0,k]*G[r,0], then += X[1,k]*G[r,1], ... (c = 0..C-1, in order)
 *   mg_mm_backward_x dX[c,k] += W[0,k]*G[0,c], then += W[1,k]*G[1,c], ... (r = 0..R-1, in order)
 *
 * Each call may use mg_mm_scratch_doubles(R, C, K) doubles at `scratch` (any alignment).
 *
 * All three are one operation, C(i,j) += A(i,k) * B(k,j) for k in order, with different strides
 * (mg_mm_run): A(i,k) is broadcast, B(k, j..j+NR) is a vector. backward_w and backward_x read B
 * where it lies (rows of X, rows of W); the forward's B is X transposed, packed panel by panel in
 * scratch by an in-register transpose. The micro-kernel (MG_MM_DEFINE_UKR) keeps an MR x NR tile
 * of accumulators in registers (AVX-512 8 x 16, AVX2 4 x 8, SSE2/NEON and C 4 x 4; tiles of half
 * the rows or columns take the edges). It is written once, with GCC vector extensions (gcc and
 * clang), and compiled for several instruction sets. On x86-64 with gcc or clang the best one the
 * CPU has is chosen at run time (AVX-512F, else AVX2, else SSE2): the rest of the extension, and
 * a wheel, need only baseline x86-64. Elsewhere: the baseline vectors (SSE2, NEON), or plain C
 * on MSVC. Every path gives the same bits: each lane multiplies, then adds.
 * mg_mm_force_isa() lets the tests (tests/test_matmul_kernels.py) and the benchmark
 * (benchmarks/matmul_kernels.py) run every path this machine has.
 */
#ifndef MICROGRAD_MATMUL_H
#define MICROGRAD_MATMUL_H

#include <stddef.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define MG_MM_RESTRICT __restrict__
#define MG_MM_API static __attribute__((unused))
#define MG_MM_PRAGMA(x) _Pragma(#x)
/* Tiles are loops of constant bounds: unrolled, so that the accumulators live in registers. */
#define MG_MM_UNROLL MG_MM_PRAGMA(GCC unroll 16)
#elif defined(_MSC_VER)
#define MG_MM_RESTRICT __restrict
#define MG_MM_API static __inline /* inline: no warning where a file includes but does not call them */
#define MG_MM_UNROLL
#else
#define MG_MM_RESTRICT
#define MG_MM_API static inline
#define MG_MM_UNROLL
#endif

#if defined(__clang__)
/* clang contracts a*b + c within an expression unless told not to (gcc obeys -ffp-contract=off). */
#define MG_MM_NO_CONTRACT MG_MM_PRAGMA(clang fp contract(off))
#else
#define MG_MM_NO_CONTRACT
#endif

/* The instruction-set paths, slowest first. */
enum { MG_MM_ISA_C = 0, MG_MM_ISA_VEC128 = 1, MG_MM_ISA_AVX2 = 2, MG_MM_ISA_AVX512 = 3, MG_MM_N_ISA = 4 };

/* The largest tile of any path: the size of the edge tiles' buffers. */
#define MG_MM_MAX_MR 8
#define MG_MM_MAX_NR 32

/* -- the micro-kernel ----------------------------------------------------------------------------
   c[i*ldc + j] (i < MR, j < NR) += a[i*ars + k*aks] * b[k*bks + j] for k = 0..n-1, in order.
   VT is a vector of V doubles (GCC vector extension); NR is a multiple of V. */
#define MG_MM_DEFINE_UKR(NAME, ATTR, VT, V, MR, NR)                                                   \
    ATTR static void NAME(ptrdiff_t n, const double *MG_MM_RESTRICT a, ptrdiff_t ars, ptrdiff_t aks,  \
                          const double *MG_MM_RESTRICT b, ptrdiff_t bks, double *MG_MM_RESTRICT c,    \
                          ptrdiff_t ldc) {                                                            \
        MG_MM_NO_CONTRACT                                                                             \
        VT acc[MR][(NR) / (V)];                                                                       \
        ptrdiff_t k;                                                                                  \
        int i, j;                                                                                     \
        MG_MM_UNROLL for (i = 0; i < (MR); i++)                                                       \
            MG_MM_UNROLL for (j = 0; j < (NR) / (V); j++)                                             \
                memcpy(&acc[i][j], c + i * ldc + j * (V), sizeof(VT));                                \
        for (k = 0; k < n; k++, a += aks, b += bks) {                                                 \
            VT bv[(NR) / (V)];                                                                        \
            MG_MM_UNROLL for (j = 0; j < (NR) / (V); j++) memcpy(&bv[j], b + j * (V), sizeof(VT));    \
            MG_MM_UNROLL for (i = 0; i < (MR); i++) {                                                 \
                const double ai = a[i * ars];                                                         \
                MG_MM_UNROLL for (j = 0; j < (NR) / (V); j++) {                                       \
                    VT p = bv[j] * ai;    /* one rounding (ai broadcast to every lane) */             \
                    acc[i][j] = acc[i][j] + p; /* and another: never an fma */                        \
                }                                                                                     \
            }                                                                                         \
        }                                                                                             \
        MG_MM_UNROLL for (i = 0; i < (MR); i++)                                                       \
            MG_MM_UNROLL for (j = 0; j < (NR) / (V); j++)                                             \
                memcpy(c + i * ldc + j * (V), &acc[i][j], sizeof(VT));                                \
    }

/* The four tiles of a path: MR x NR for the body, and half as many rows and/or columns for the
   edges (10 rows are 8 + 2 rows padded to 4, not to 8). */
#define MG_MM_DEFINE_UKRS(PREFIX, ATTR, VT, V, MR, NR)                                                 \
    MG_MM_DEFINE_UKR(PREFIX##_full, ATTR, VT, V, MR, NR)                                              \
    MG_MM_DEFINE_UKR(PREFIX##_hr, ATTR, VT, V, (MR) / 2, NR)                                          \
    MG_MM_DEFINE_UKR(PREFIX##_hc, ATTR, VT, V, MR, (NR) / 2)                                          \
    MG_MM_DEFINE_UKR(PREFIX##_hh, ATTR, VT, V, (MR) / 2, (NR) / 2)
#define MG_MM_UKRS(PREFIX) {{PREFIX##_full, PREFIX##_hc}, {PREFIX##_hr, PREFIX##_hh}}

/* Plain C (a "vector" of one double), for compilers without vector extensions (MSVC). */
#define MG_MM_C_MR 4
#define MG_MM_C_NR 4
MG_MM_DEFINE_UKRS(mg_mm_ukr_c, , double, 1, MG_MM_C_MR, MG_MM_C_NR)

/* -- the transposing pack ---------------------------------------------------------------------------
   dst[k*nr + j] = src[j*ld + k] for j < nj, k < n, and 0 for nj <= j < nr: the forward's panel of
   X transposed (B(k,c) = X[c*K + k]). Data movement only, so any order gives the same bits; the
   vector paths transpose V x V blocks in registers (a scalar loop would cost as much as the
   products when R is small). */
static void mg_mm_pack_t_c(ptrdiff_t n, const double *MG_MM_RESTRICT src, ptrdiff_t ld, ptrdiff_t nj, int nr,
                           double *MG_MM_RESTRICT dst) {
    ptrdiff_t j, k;
    for (j = 0; j < nr; j++)
        for (k = 0; k < n; k++) dst[k * nr + j] = j < nj ? src[j * ld + k] : 0.0;
}

#define MG_MM_DEFINE_PACK_T(NAME, ATTR, VT, V, TRANSPOSE)                                              \
    ATTR static void NAME(ptrdiff_t n, const double *MG_MM_RESTRICT src, ptrdiff_t ld, ptrdiff_t nj, int nr, \
                          double *MG_MM_RESTRICT dst) {                                                   \
        ptrdiff_t j0, k0, k;                                                                           \
        int l;                                                                                         \
        for (j0 = 0; j0 + (V) <= nj; j0 += (V)) {                                                      \
            for (k0 = 0; k0 + (V) <= n; k0 += (V)) {                                                   \
                VT r[V];                                                                               \
                MG_MM_UNROLL for (l = 0; l < (V); l++) memcpy(&r[l], src + (j0 + l) * ld + k0, sizeof(VT)); \
                TRANSPOSE(r);                                                                          \
                MG_MM_UNROLL for (l = 0; l < (V); l++) memcpy(dst + (k0 + l) * nr + j0, &r[l], sizeof(VT)); \
            }                                                                                          \
            for (k = k0; k < n; k++)                                                                   \
                for (l = 0; l < (V); l++) dst[k * nr + j0 + l] = src[(j0 + l) * ld + k];               \
        }                                                                                              \
        for (; j0 < nr; j0++)                                                                          \
            for (k = 0; k < n; k++) dst[k * nr + j0] = j0 < nj ? src[j0 * ld + k] : 0.0;               \
    }

#if defined(__GNUC__) || defined(__clang__)
#define MG_MM_HAVE_VEC128 1
typedef double mg_mm_v2d __attribute__((vector_size(16)));
typedef long long mg_mm_v2i __attribute__((vector_size(16)));
#if defined(__clang__) || __GNUC__ >= 12
#define MG_MM_SHUF(MASKT, a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define MG_MM_SHUF(MASKT, a, b, ...) __builtin_shuffle(a, b, (MASKT){__VA_ARGS__})
#endif
#define MG_MM_TRANSPOSE2(r)                                                                            \
    do {                                                                                               \
        mg_mm_v2d t0 = MG_MM_SHUF(mg_mm_v2i, r[0], r[1], 0, 2), t1 = MG_MM_SHUF(mg_mm_v2i, r[0], r[1], 1, 3); \
        r[0] = t0;                                                                                     \
        r[1] = t1;                                                                                     \
    } while (0)
MG_MM_DEFINE_PACK_T(mg_mm_pack_t_vec128, , mg_mm_v2d, 2, MG_MM_TRANSPOSE2)
/* SSE2 on x86-64, NEON on arm64: the baseline every CPU of those platforms has. */
#ifndef MG_MM_VEC128_MR
#define MG_MM_VEC128_MR 4
#define MG_MM_VEC128_NR 4
#endif
MG_MM_DEFINE_UKRS(mg_mm_ukr_vec128, , mg_mm_v2d, 2, MG_MM_VEC128_MR, MG_MM_VEC128_NR)
#endif

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__)) && !defined(_MSC_VER) \
    && (defined(__clang__) || __GNUC__ >= 6)
/* Chosen at run time; the rest of the extension stays baseline x86-64. */
#define MG_MM_HAVE_X86_DISPATCH 1
typedef double mg_mm_v4d __attribute__((vector_size(32)));
typedef double mg_mm_v8d __attribute__((vector_size(64)));
#ifndef MG_MM_AVX2_MR
#define MG_MM_AVX2_MR 4
#define MG_MM_AVX2_NR 8
#endif
#ifndef MG_MM_AVX512_MR
#define MG_MM_AVX512_MR 8
#define MG_MM_AVX512_NR 16
#endif
MG_MM_DEFINE_UKRS(mg_mm_ukr_avx2, __attribute__((target("avx2"))), mg_mm_v4d, 4, MG_MM_AVX2_MR, MG_MM_AVX2_NR)
MG_MM_DEFINE_UKRS(mg_mm_ukr_avx512, __attribute__((target("avx512f"))), mg_mm_v8d, 8, MG_MM_AVX512_MR, MG_MM_AVX512_NR)
/* A wide tile (fewer rows of A in flight, more columns) for the gradient of X. */
#ifndef MG_MM_AVX512W_MR
#define MG_MM_AVX512W_MR 4
#define MG_MM_AVX512W_NR 32
#endif
MG_MM_DEFINE_UKRS(mg_mm_ukr_avx512w, __attribute__((target("avx512f"))), mg_mm_v8d, 8, MG_MM_AVX512W_MR, MG_MM_AVX512W_NR)
typedef long long mg_mm_v4i __attribute__((vector_size(32)));
typedef long long mg_mm_v8i __attribute__((vector_size(64)));
/* 4 x 4: pairs of rows interleaved, then pairs of halves */
#define MG_MM_TRANSPOSE4(r)                                                                            \
    do {                                                                                               \
        mg_mm_v4d t0 = MG_MM_SHUF(mg_mm_v4i, r[0], r[1], 0, 4, 2, 6), t1 = MG_MM_SHUF(mg_mm_v4i, r[0], r[1], 1, 5, 3, 7); \
        mg_mm_v4d t2 = MG_MM_SHUF(mg_mm_v4i, r[2], r[3], 0, 4, 2, 6), t3 = MG_MM_SHUF(mg_mm_v4i, r[2], r[3], 1, 5, 3, 7); \
        r[0] = MG_MM_SHUF(mg_mm_v4i, t0, t2, 0, 1, 4, 5);                                              \
        r[1] = MG_MM_SHUF(mg_mm_v4i, t1, t3, 0, 1, 4, 5);                                              \
        r[2] = MG_MM_SHUF(mg_mm_v4i, t0, t2, 2, 3, 6, 7);                                              \
        r[3] = MG_MM_SHUF(mg_mm_v4i, t1, t3, 2, 3, 6, 7);                                              \
    } while (0)
/* 8 x 8: rows interleaved in pairs, then by twos, then by fours */
#define MG_MM_T8_LO(a, b) MG_MM_SHUF(mg_mm_v8i, a, b, 0, 8, 2, 10, 4, 12, 6, 14)
#define MG_MM_T8_HI(a, b) MG_MM_SHUF(mg_mm_v8i, a, b, 1, 9, 3, 11, 5, 13, 7, 15)
#define MG_MM_T8_LO2(a, b) MG_MM_SHUF(mg_mm_v8i, a, b, 0, 1, 8, 9, 4, 5, 12, 13)
#define MG_MM_T8_HI2(a, b) MG_MM_SHUF(mg_mm_v8i, a, b, 2, 3, 10, 11, 6, 7, 14, 15)
#define MG_MM_T8_LO4(a, b) MG_MM_SHUF(mg_mm_v8i, a, b, 0, 1, 2, 3, 8, 9, 10, 11)
#define MG_MM_T8_HI4(a, b) MG_MM_SHUF(mg_mm_v8i, a, b, 4, 5, 6, 7, 12, 13, 14, 15)
#define MG_MM_TRANSPOSE8(r)                                                                            \
    do {                                                                                               \
        mg_mm_v8d t0 = MG_MM_T8_LO(r[0], r[1]), t1 = MG_MM_T8_HI(r[0], r[1]);                          \
        mg_mm_v8d t2 = MG_MM_T8_LO(r[2], r[3]), t3 = MG_MM_T8_HI(r[2], r[3]);                          \
        mg_mm_v8d t4 = MG_MM_T8_LO(r[4], r[5]), t5 = MG_MM_T8_HI(r[4], r[5]);                          \
        mg_mm_v8d t6 = MG_MM_T8_LO(r[6], r[7]), t7 = MG_MM_T8_HI(r[6], r[7]);                          \
        mg_mm_v8d u0 = MG_MM_T8_LO2(t0, t2), u1 = MG_MM_T8_LO2(t1, t3);                                \
        mg_mm_v8d u2 = MG_MM_T8_HI2(t0, t2), u3 = MG_MM_T8_HI2(t1, t3);                                \
        mg_mm_v8d u4 = MG_MM_T8_LO2(t4, t6), u5 = MG_MM_T8_LO2(t5, t7);                                \
        mg_mm_v8d u6 = MG_MM_T8_HI2(t4, t6), u7 = MG_MM_T8_HI2(t5, t7);                                \
        r[0] = MG_MM_T8_LO4(u0, u4);                                                                   \
        r[1] = MG_MM_T8_LO4(u1, u5);                                                                   \
        r[2] = MG_MM_T8_LO4(u2, u6);                                                                   \
        r[3] = MG_MM_T8_LO4(u3, u7);                                                                   \
        r[4] = MG_MM_T8_HI4(u0, u4);                                                                   \
        r[5] = MG_MM_T8_HI4(u1, u5);                                                                   \
        r[6] = MG_MM_T8_HI4(u2, u6);                                                                   \
        r[7] = MG_MM_T8_HI4(u3, u7);                                                                   \
    } while (0)
MG_MM_DEFINE_PACK_T(mg_mm_pack_t_avx2, __attribute__((target("avx2"))), mg_mm_v4d, 4, MG_MM_TRANSPOSE4)
MG_MM_DEFINE_PACK_T(mg_mm_pack_t_avx512, __attribute__((target("avx512f"))), mg_mm_v8d, 8, MG_MM_TRANSPOSE8)
#if defined(__APPLE__)
#include <sys/sysctl.h>
/* macOS enables the AVX-512 state lazily: ask the kernel, not cpuid. */
static int mg_mm_sysctl_flag(const char *name) {
    int value = 0;
    size_t size = sizeof value;
    return sysctlbyname(name, &value, &size, NULL, 0) == 0 && value != 0;
}
#define MG_MM_CPU_HAS_AVX2() mg_mm_sysctl_flag("hw.optional.avx2_0")
#define MG_MM_CPU_HAS_AVX512() mg_mm_sysctl_flag("hw.optional.avx512f")
#else
#define MG_MM_CPU_HAS_AVX2() __builtin_cpu_supports("avx2")
#define MG_MM_CPU_HAS_AVX512() __builtin_cpu_supports("avx512f")
#endif
#endif

/* -- paths and their choice --------------------------------------------------------------------- */

typedef void (*mg_mm_ukr_fn)(ptrdiff_t, const double *, ptrdiff_t, ptrdiff_t, const double *, ptrdiff_t,
                             double *, ptrdiff_t);
typedef void (*mg_mm_pack_fn)(ptrdiff_t, const double *, ptrdiff_t, ptrdiff_t, int, double *);
typedef struct {
    mg_mm_ukr_fn ukr[2][2]; /* [half the rows][half the columns]; NULL: not compiled here */
    int mr, nr;
} mg_mm_tiles;
#define MG_MM_TILES(PREFIX, MR, NR) {MG_MM_UKRS(PREFIX), MR, NR}
#define MG_MM_NO_TILES {{{NULL, NULL}, {NULL, NULL}}, 0, 0}

/* Two tile shapes per path: square-ish ([0]) and wide ([1], fewer rows of A in flight), the one
   each kernel prefers (forward, backward_w, backward_x: measured), the transposing pack, a name. */
enum { MG_MM_FORWARD = 0, MG_MM_BACKWARD_W = 1, MG_MM_BACKWARD_X = 2 };
typedef struct {
    mg_mm_tiles tiles[2];
    int prefer[3];
    mg_mm_pack_fn pack_t;
    const char *name;
} mg_mm_path;

#define MG_MM_ONE_TILE(PREFIX, MR, NR) {MG_MM_TILES(PREFIX, MR, NR), MG_MM_TILES(PREFIX, MR, NR)}, {0, 0, 0}
static const mg_mm_path mg_mm_paths[MG_MM_N_ISA] = {
    {MG_MM_ONE_TILE(mg_mm_ukr_c, MG_MM_C_MR, MG_MM_C_NR), mg_mm_pack_t_c, "c"},
#ifdef MG_MM_HAVE_VEC128
    {MG_MM_ONE_TILE(mg_mm_ukr_vec128, MG_MM_VEC128_MR, MG_MM_VEC128_NR), mg_mm_pack_t_vec128, "vec128"},
#else
    {{MG_MM_NO_TILES, MG_MM_NO_TILES}, {0, 0, 0}, NULL, "vec128"},
#endif
#ifdef MG_MM_HAVE_X86_DISPATCH
    {MG_MM_ONE_TILE(mg_mm_ukr_avx2, MG_MM_AVX2_MR, MG_MM_AVX2_NR), mg_mm_pack_t_avx2, "avx2"},
    {{MG_MM_TILES(mg_mm_ukr_avx512, MG_MM_AVX512_MR, MG_MM_AVX512_NR),
      MG_MM_TILES(mg_mm_ukr_avx512w, MG_MM_AVX512W_MR, MG_MM_AVX512W_NR)},
     {0, 0, 1}, mg_mm_pack_t_avx512, "avx512"},
#else
    {{MG_MM_NO_TILES, MG_MM_NO_TILES}, {0, 0, 0}, NULL, "avx2"},
    {{MG_MM_NO_TILES, MG_MM_NO_TILES}, {0, 0, 0}, NULL, "avx512"},
#endif
};

/* Rows (or columns) computed for m of them with tiles of t: whole tiles, the last one halved
   if the rest fits in half a tile. */
static ptrdiff_t mg_mm_padded(ptrdiff_t m, int t) {
    const ptrdiff_t rest = m % t;
    return m - rest + (rest == 0 ? 0 : rest <= t / 2 ? t / 2 : t);
}

/* The kernel's preferred tiles, unless the other shape wastes clearly less on this problem's
   edges (10 rows: 8 + 4 with 8-row tiles, 4 + 4 + 2 with 4-row tiles). */
static const mg_mm_tiles *mg_mm_choose_tiles(const mg_mm_path *path, int kernel, ptrdiff_t M, ptrdiff_t N) {
    const mg_mm_tiles *pref = &path->tiles[path->prefer[kernel]], *alt = &path->tiles[1 - path->prefer[kernel]];
    const double work_pref = (double)mg_mm_padded(M, pref->mr) * (double)mg_mm_padded(N, pref->nr);
    const double work_alt = (double)mg_mm_padded(M, alt->mr) * (double)mg_mm_padded(N, alt->nr);
    return work_alt < 0.9 * work_pref ? alt : pref;
}

/* Whether path `level` is compiled here and this CPU runs it. */
MG_MM_API int mg_mm_isa_available(int level) {
    if (level < 0 || level >= MG_MM_N_ISA || mg_mm_paths[level].tiles[0].ukr[0][0] == NULL) return 0;
#ifdef MG_MM_HAVE_X86_DISPATCH
    if (level == MG_MM_ISA_AVX2) return MG_MM_CPU_HAS_AVX2() ? 1 : 0;
    if (level == MG_MM_ISA_AVX512) return MG_MM_CPU_HAS_AVX512() ? 1 : 0;
#endif
    return 1;
}

/* The path forced by mg_mm_force_isa (tests and benchmarks), or -1: the best available. Set it
   before the kernels run, never while another thread calls them. */
static int mg_mm_forced_isa = -1;

/* The path the kernels use now. */
MG_MM_API int mg_mm_isa(void) {
    int level;
    if (mg_mm_forced_isa >= 0) return mg_mm_forced_isa;
    for (level = MG_MM_N_ISA - 1; level > 0; level--)
        if (mg_mm_isa_available(level)) return level;
    return MG_MM_ISA_C;
}

/* Force path `level` (-1: back to the automatic choice). 0, or -1 if it is not available here. */
MG_MM_API int mg_mm_force_isa(int level) {
    if (level != -1 && !mg_mm_isa_available(level)) return -1;
    mg_mm_forced_isa = level;
    return 0;
}

MG_MM_API const char *mg_mm_isa_name(int level) {
    return level >= 0 && level < MG_MM_N_ISA ? mg_mm_paths[level].name : "unknown";
}

/* -- the driver ----------------------------------------------------------------------------------- */

/* Scratch of mg_mm_run for a sum of n terms: one packed panel of B and one of A (edge rows),
   plus room to align them. */
static ptrdiff_t mg_mm_run_scratch(ptrdiff_t n) { return n * (MG_MM_MAX_NR + MG_MM_MAX_MR) + 8; }

MG_MM_API ptrdiff_t mg_mm_scratch_doubles(ptrdiff_t R, ptrdiff_t C, ptrdiff_t K) {
    ptrdiff_t n = R > C ? R : C;
    return mg_mm_run_scratch(n > K ? n : K);
}

/* C[i*ldc + j] (i < M, j < N) += A(i,k) * B(k,j) for k = 0..n-1 in order, where
   A(i,k) = A[i*ars + k*aks] and B(k,j) = B[k*bks + j*bjs]. */
static void mg_mm_run(int kernel, ptrdiff_t M, ptrdiff_t N, ptrdiff_t n, const double *A, ptrdiff_t ars,
                      ptrdiff_t aks, const double *B, ptrdiff_t bks, ptrdiff_t bjs, double *C, ptrdiff_t ldc,
                      double *scratch) {
    const mg_mm_path *path = &mg_mm_paths[mg_mm_isa()];
    const mg_mm_tiles *tiles = mg_mm_choose_tiles(path, kernel, M, N);
    const int mr = tiles->mr, nr = tiles->nr;
    /* the last rows go through a tile of half the rows if they fit in one */
    const ptrdiff_t body = M - M % mr;
    const int edge_half = M % mr != 0 && M % mr <= mr / 2, edge_mr = edge_half ? mr / 2 : mr;
    const int pad_rows = body < M && body + edge_mr > M; /* the last tile reaches beyond M */
    /* 64-byte aligned panels: whole cache lines, aligned vector loads */
    double *bp = (double *)(((size_t)scratch + 63) & ~(size_t)63);
    double *ap = bp + n * MG_MM_MAX_NR;
    double tile[MG_MM_MAX_MR * MG_MM_MAX_NR];
    ptrdiff_t i0, j0, i, j, k;

    if (pad_rows) /* the last rows of A, packed once, zero rows up to a whole tile */
        for (i = 0; i < edge_mr; i++)
            for (k = 0; k < n; k++) ap[i * n + k] = body + i < M ? A[(body + i) * ars + k * aks] : 0.0;
    for (j0 = 0; j0 < N; j0 += nr) {
        const ptrdiff_t nj = N - j0 < nr ? N - j0 : nr;
        const int half_cols = nj <= nr / 2, pnr = half_cols ? nr / 2 : nr; /* this panel's width */
        const double *b = B + j0 * bjs;
        ptrdiff_t b_ks = bks;
        /* B's columns j0.. as a contiguous panel, zero beyond N (lanes computed, not kept),
           unless they are one already */
        if (bks == 1 && bjs != 1) {
            path->pack_t(n, b, bjs, nj, pnr, bp);
            b = bp;
            b_ks = pnr;
        } else if (bjs != 1 || nj < pnr) {
            for (k = 0; k < n; k++) {
                for (j = 0; j < nj; j++) bp[k * pnr + j] = b[k * bks + j * bjs];
                for (; j < pnr; j++) bp[k * pnr + j] = 0.0;
            }
            b = bp;
            b_ks = pnr;
        }
        for (i0 = 0; i0 < M; i0 += mr) {
            const int last = i0 == body, pmr = last ? edge_mr : mr;
            const ptrdiff_t ni = last ? M - body : mr;
            const mg_mm_ukr_fn ukr = tiles->ukr[last && edge_half][half_cols];
            if (!(last && pad_rows) && nj == pnr) {
                ukr(n, A + i0 * ars, ars, aks, b, b_ks, C + i0 * ldc + j0, ldc);
                continue;
            }
            /* an edge tile: through a whole tile's copy */
            for (i = 0; i < pmr; i++)
                for (j = 0; j < pnr; j++) tile[i * pnr + j] = i < ni && j < nj ? C[(i0 + i) * ldc + j0 + j] : 0.0;
            if (last && pad_rows)
                ukr(n, ap, n, 1, b, b_ks, tile, pnr);
            else
                ukr(n, A + i0 * ars, ars, aks, b, b_ks, tile, pnr);
            for (i = 0; i < ni; i++)
                for (j = 0; j < nj; j++) C[(i0 + i) * ldc + j0 + j] = tile[i * pnr + j];
        }
    }
}

/* -- the three kernels ---------------------------------------------------------------------------- */

/* out[r*C+c] = S[r*C+c] + W[r,0]*X[c,0], then out = out + W[r,k]*X[c,k] for k = 1..K-1.
   W is R x K, X is C x K, S and out are R x C (out may be S itself). */
MG_MM_API void mg_mm_forward(ptrdiff_t R, ptrdiff_t C, ptrdiff_t K, const double *W, const double *X,
                             const double *S, double *out, double *scratch) {
    if (out != S) memcpy(out, S, (size_t)(R * C) * sizeof(double));
    /* A(r,k) = W[r*K + k], B(k,c) = X[c*K + k] (packed by panels: the transpose) */
    mg_mm_run(MG_MM_FORWARD, R, C, K, W, K, 1, X, 1, K, out, C, scratch);
}

/* dW[r*K+k] = ((dW[r,k] + X[0,k]*G[r,0]) + X[1,k]*G[r,1]) + ... for c = 0..C-1.
   X is C x K, G is R x C, dW is R x K. */
MG_MM_API void mg_mm_backward_w(ptrdiff_t R, ptrdiff_t C, ptrdiff_t K, const double *X, const double *G,
                                double *dW, double *scratch) {
    /* A(r,c) = G[r*C + c], B(c,k) = X[c*K + k] */
    mg_mm_run(MG_MM_BACKWARD_W, R, K, C, G, C, 1, X, K, 1, dW, K, scratch);
}

/* dX[c*K+k] = ((dX[c,k] + W[0,k]*G[0,c]) + W[1,k]*G[1,c]) + ... for r = 0..R-1.
   W is R x K, G is R x C, dX is C x K. */
MG_MM_API void mg_mm_backward_x(ptrdiff_t R, ptrdiff_t C, ptrdiff_t K, const double *W, const double *G,
                                double *dX, double *scratch) {
    /* A(c,r) = G[r*C + c], B(r,k) = W[r*K + k] */
    mg_mm_run(MG_MM_BACKWARD_X, C, K, R, G, 1, C, W, K, 1, dX, K, scratch);
}

#endif /* MICROGRAD_MATMUL_H */
