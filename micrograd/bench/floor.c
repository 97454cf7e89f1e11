/* micrograd bench: the C floor, compiled at run time by micrograd/bench/c_floor.py.
 *
 *   floor tape-step|tape-chain|dense INPUT
 *
 * - tape-step, tape-chain: a plain C loop (a switch per node) over the scalar tape micrograd.Tape
 *   records (c-tape), forward then reverse; the demo step, or a chain forward and backward.
 * - dense: the demo step over dense arrays, as one would write an MLP in C (c-dense).
 *
 * INPUT is the text c_floor.py writes (floats in C99 hex, read exactly). The answer is JSON on
 * stdout: the correctness gate's numbers, then the time of every round.
 *
 * Timing: before each timed loop the program prints one line, "estimate <seconds of one
 * round>", and reads the number of rounds to run from stdin: the rule that turns the estimate
 * into rounds is micrograd/bench/timing.py's, the one every engine is timed with.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the op rules ----------------------------------------------------------------------------
 * Forward and local derivatives of every op, with the op codes of micrograd/_ops.py (c_floor.py
 * checks OP_NAMES against it before compiling). These have the names and signatures of the
 * engines' own C kernels (micrograd/_kernels.h): where that header is shipped, this block is
 * replaced by `#include "_kernels.h"`. Backward is `g[child] += local * g[node]` for each
 * operand in order, as the engines do it. */
enum { MG_LEAF, MG_ADD, MG_MUL, MG_POWC, MG_POW, MG_RELU, MG_TANH, MG_EXP, MG_LOG, MG_SIGMOID };
#define MG_OP_NAMES "leaf add mul powc pow relu tanh exp log sigmoid"
enum { MG_OK = 0, MG_RAISES = 1, MG_UNKNOWN_OP = -1 };

static inline int mg_arity(int op) {
    switch (op) {
    case MG_ADD: case MG_MUL: case MG_POW: return 2;
    case MG_POWC: case MG_RELU: case MG_TANH: case MG_EXP: case MG_LOG: case MG_SIGMOID: return 1;
    case MG_LEAF: return 0;
    default: return -1;
    }
}

/* *out = op(x, y): y is b's data (binary ops) or the constant exponent (powc). MG_RAISES where
   eager mode raises (never on the bench's workloads); MG_UNKNOWN_OP for a code it does not know. */
static inline int mg_forward(int op, double x, double y, double *out) {
    double e;
    switch (op) {
    case MG_ADD: *out = x + y; return MG_OK;
    case MG_MUL: *out = x * y; return MG_OK;
    case MG_POWC: case MG_POW:
        if ((x == 0.0 && y < 0.0) || (x < 0.0 && isfinite(x) && isfinite(y) && y != floor(y))) return MG_RAISES;
        *out = pow(x, y);
        return isinf(*out) && isfinite(x) && isfinite(y) ? MG_RAISES : MG_OK;
    case MG_RELU: *out = x < 0 ? 0.0 : x; return MG_OK;
    case MG_TANH: *out = tanh(x); return MG_OK;
    case MG_EXP: *out = exp(x); return isinf(*out) && isfinite(x) ? MG_RAISES : MG_OK;
    case MG_LOG: if (x <= 0.0) return MG_RAISES; *out = log(x); return MG_OK;
    case MG_SIGMOID:
        if (x >= 0.0) { *out = 1.0 / (1.0 + exp(-x)); return MG_OK; }
        e = exp(x);
        *out = e / (1.0 + e);
        return MG_OK;
    default: return MG_UNKNOWN_OP;
    }
}

/* d(out)/d(a) into *da and, for binary ops, d(out)/d(b) into *db. */
static inline int mg_local_grads(int op, double x, double y, double out, double *da, double *db) {
    switch (op) {
    case MG_ADD: *da = 1.0; *db = 1.0; return MG_OK;
    case MG_MUL: *da = y; *db = x; return MG_OK;
    case MG_POWC: *da = y * pow(x, y - 1.0); return MG_OK;
    case MG_POW:
        *da = y * pow(x, y - 1.0);
        *db = x > 0.0 ? out * log(x) : (x == 0.0 && y >= 0.0 ? 0.0 : NAN);
        return MG_OK;
    case MG_RELU: *da = out > 0 ? 1.0 : 0.0; return MG_OK;
    case MG_TANH: *da = 1.0 - out * out; return MG_OK;
    case MG_EXP: *da = out; return MG_OK;
    case MG_LOG: *da = 1.0 / x; return MG_OK;
    case MG_SIGMOID: *da = out * (1.0 - out); return MG_OK;
    default: return MG_UNKNOWN_OP;
    }
}
/* ---- end of the op rules --------------------------------------------------------------------- */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fail(const char *what, long where) {
    fprintf(stderr, "%s (at %ld)\n", what, where);
    exit(3);
}

static FILE *in;
static double next_double(void) {
    char tok[128];
    if (fscanf(in, "%127s", tok) != 1) fail("input ended early", ftell(in));
    return strtod(tok, NULL);  /* reads the hex floats of Python's float.hex() exactly */
}
static long next_long(void) { return (long)next_double(); }

static void print_list(const char *name, const double *v, long n, int comma) {
    printf("\"%s\": [", name);
    for (long i = 0; i < n; i++) {
        if (isnan(v[i])) printf("%sNaN", i ? ", " : "");
        else if (isinf(v[i])) printf("%s%sInfinity", i ? ", " : "", v[i] < 0 ? "-" : "");
        else printf("%s%.17g", i ? ", " : "", v[i]);
    }
    printf("]%s\n", comma ? "," : "");
}

/* The rounds to time, asked of the parent for an estimate of one round (see the top). */
static long rounds_for(double estimate) {
    long rounds;
    printf("estimate %a\n", estimate);
    fflush(stdout);
    if (scanf("%ld", &rounds) != 1 || rounds < 1) fail("no number of rounds on stdin", 0);
    return rounds;
}

/* One warm-up round for the estimate, then the rounds, each timed; prints them as a list. */
typedef void (*round_fn)(void *);
static void time_rounds(const char *name, round_fn fn, void *arg, int comma) {
    double t0 = now();
    fn(arg);
    long r = rounds_for(now() - t0);
    double *times = malloc(r * sizeof(double));
    for (long i = 0; i < r; i++) { t0 = now(); fn(arg); times[i] = now() - t0; }
    print_list(name, times, r, comma);
    free(times);
}

/* ---- the scalar tape -----------------------------------------------------------------------
   micrograd.Tape's layout: slots 0..L-1 are the leaves, L..N-1 the interior nodes in eager
   backward's order (the root last); per interior node an op code and two child slots (for
   powc, b indexes the table of constant exponents). */
typedef struct {
    long nleaves, ninterior, n, nparams, nconsts, step;
    unsigned char *op;
    int *a, *b;
    double *consts, *data, *grad;
    long *params;
} Tape;

static void read_tape(Tape *t) {
    t->nleaves = next_long(); t->ninterior = next_long(); t->nparams = next_long(); t->nconsts = next_long();
    t->n = t->nleaves + t->ninterior;
    t->step = 0;
    t->op = malloc(t->ninterior + 1); t->a = malloc((t->ninterior + 1) * sizeof(int));
    t->b = malloc((t->ninterior + 1) * sizeof(int)); t->consts = malloc((t->nconsts + 1) * sizeof(double));
    t->data = malloc(t->n * sizeof(double)); t->grad = calloc(t->n, sizeof(double));
    t->params = malloc((t->nparams + 1) * sizeof(long));
    for (long i = 0; i < t->nconsts; i++) t->consts[i] = next_double();
    for (long i = 0; i < t->nleaves; i++) t->data[i] = next_double();
    for (long j = 0; j < t->ninterior; j++) {
        t->op[j] = (unsigned char)next_long(); t->a[j] = (int)next_long(); t->b[j] = (int)next_long();
        if (mg_arity(t->op[j]) < 1) fail("not an interior op code", t->op[j]);
    }
    for (long i = 0; i < t->nparams; i++) t->params[i] = next_long();
}

static inline double operand_b(const Tape *t, long j) {
    return t->op[j] == MG_POWC ? t->consts[t->b[j]] : (mg_arity(t->op[j]) == 2 ? t->data[t->b[j]] : 0.0);
}

static void forward(Tape *t) {
    for (long j = 0; j < t->ninterior; j++)
        if (mg_forward(t->op[j], t->data[t->a[j]], operand_b(t, j), &t->data[t->nleaves + j]) != MG_OK)
            fail("forward failed", j);
}

/* zero_grad for every slot, root's grad 1, then the chain rule in reverse */
static void backward(Tape *t) {
    double *g = t->grad, da = 0.0, db = 0.0;
    memset(g, 0, t->n * sizeof(double));
    g[t->n - 1] = 1.0;
    for (long j = t->ninterior - 1; j >= 0; j--) {
        const long i = t->nleaves + j;
        if (mg_local_grads(t->op[j], t->data[t->a[j]], operand_b(t, j), t->data[i], &da, &db) != MG_OK)
            fail("no backward rule", j);
        g[t->a[j]] += da * g[i];
        if (mg_arity(t->op[j]) == 2) g[t->b[j]] += db * g[i];
    }
}

static void sgd(Tape *t, double lr) {
    for (long i = 0; i < t->nparams; i++) t->data[t->params[i]] -= lr * t->grad[t->params[i]];
}

static double lr_of(long k) { return 1.0 - 0.9 * (double)(k % 100) / 100; }

static void tape_forward(void *t) { forward(t); }
static void tape_backward(void *t) { backward(t); }
static void tape_step(void *p) { Tape *t = p; forward(t); backward(t); sgd(t, lr_of(t->step++)); }

/* the gate: output and parameter grads, twice (after "change" between the two) */
static void tape_gate(Tape *t, int chain) {
    double *out = malloc(2 * (t->nparams + 1) * sizeof(double));
    long m = 0;
    for (int rep = 0; rep < 2; rep++) {
        forward(t); backward(t);
        out[m++] = t->data[t->n - 1];
        for (long i = 0; i < t->nparams; i++) out[m++] = t->grad[t->params[i]];
        if (chain) t->data[t->params[0]] += 0.25; else sgd(t, 1.0);
    }
    print_list("gate", out, m, 1);
    free(out);
}

static void run_tape(int chain) {
    Tape t;
    read_tape(&t);
    printf("{\"bytes_per_node\": %lu,\n", (unsigned long)(1 + 2 * sizeof(int) + 2 * sizeof(double)));
    tape_gate(&t, chain);
    if (chain) {
        time_rounds("chain-forward", tape_forward, &t, 1);
        time_rounds("chain-backward", tape_backward, &t, 0);
    } else {
        time_rounds("demo-step", tape_step, &t, 0);
    }
    printf("}\n");
}

/* ---- the demo step over dense arrays --------------------------------------------------------- */
#define MAXL 8
static long L, sz[MAXL + 1], ns, dense_k;
static double alpha;  /* the L2 strength */
static double *W[MAXL], *B[MAXL], *GW[MAXL], *GB[MAXL];
static double *X, *Y, *act[MAXL + 1], *dact[MAXL + 1];  /* act[l]: ns x sz[l], after ReLU */

static double dense_loss_and_grads(void) {
    double data_loss = 0.0, reg = 0.0;
    for (long l = 0; l < L; l++) {
        memset(GW[l], 0, sz[l] * sz[l + 1] * sizeof(double));
        memset(GB[l], 0, sz[l + 1] * sizeof(double));
    }
    for (long s = 0; s < ns; s++) memcpy(act[0] + s * sz[0], X + s * sz[0], sz[0] * sizeof(double));
    for (long l = 0; l < L; l++) {           /* forward: act = b + sum_i w_i x_i, then ReLU */
        long nin = sz[l], nout = sz[l + 1];
        for (long s = 0; s < ns; s++) {
            const double *x = act[l] + s * nin;
            double *o = act[l + 1] + s * nout;
            for (long j = 0; j < nout; j++) {
                const double *w = W[l] + j * nin;
                double v = B[l][j];
                for (long i = 0; i < nin; i++) v += w[i] * x[i];
                o[j] = (l < L - 1 && v < 0) ? 0.0 : v;
            }
        }
    }
    for (long s = 0; s < ns; s++) {          /* max-margin loss and its gradient on the scores */
        double margin = act[L][s] * -Y[s] + 1.0;
        double li = margin < 0 ? 0.0 : margin;
        data_loss += li;
        dact[L][s] = (li > 0) * (1.0 / ns) * -Y[s];
    }
    data_loss *= 1.0 / ns;
    for (long l = L - 1; l >= 0; l--) {      /* backward through the layers */
        long nin = sz[l], nout = sz[l + 1];
        memset(dact[l], 0, ns * nin * sizeof(double));
        for (long s = 0; s < ns; s++) {
            const double *x = act[l] + s * nin, *o = act[l + 1] + s * nout;
            double *dx = dact[l] + s * nin, *dout = dact[l + 1] + s * nout;
            for (long j = 0; j < nout; j++) {
                double g = (l < L - 1) ? (o[j] > 0) * dout[j] : dout[j];
                double *gw = GW[l] + j * nin;
                const double *w = W[l] + j * nin;
                GB[l][j] += g;
                for (long i = 0; i < nin; i++) { gw[i] += x[i] * g; dx[i] += w[i] * g; }
            }
        }
    }
    for (long l = 0; l < L; l++) {           /* L2: the engines' p*p gives p*alpha twice */
        long nw = sz[l] * sz[l + 1];
        for (long i = 0; i < nw; i++) { reg += W[l][i] * W[l][i]; GW[l][i] += W[l][i] * alpha; GW[l][i] += W[l][i] * alpha; }
        for (long j = 0; j < sz[l + 1]; j++) { reg += B[l][j] * B[l][j]; GB[l][j] += B[l][j] * alpha; GB[l][j] += B[l][j] * alpha; }
    }
    return data_loss + reg * alpha;
}

static void dense_sgd(double lr) {
    for (long l = 0; l < L; l++) {
        for (long i = 0; i < sz[l] * sz[l + 1]; i++) W[l][i] -= lr * GW[l][i];
        for (long j = 0; j < sz[l + 1]; j++) B[l][j] -= lr * GB[l][j];
    }
}

static long dense_grads(double *out) {  /* in Karpathy's order: each neuron's w, then its b */
    long m = 0;
    for (long l = 0; l < L; l++)
        for (long j = 0; j < sz[l + 1]; j++) {
            for (long i = 0; i < sz[l]; i++) out[m++] = GW[l][j * sz[l] + i];
            out[m++] = GB[l][j];
        }
    return m;
}

static void dense_step(void *unused) { (void)unused; dense_loss_and_grads(); dense_sgd(lr_of(dense_k++)); }

static void run_dense(void) {
    ns = next_long(); L = next_long(); alpha = next_double();
    if (L > MAXL) fail("too many layers", L);
    long nparams = 0;
    for (long l = 0; l <= L; l++) sz[l] = next_long();
    X = malloc(ns * sz[0] * sizeof(double)); Y = malloc(ns * sizeof(double));
    for (long i = 0; i < ns * sz[0]; i++) X[i] = next_double();
    for (long i = 0; i < ns; i++) Y[i] = next_double();
    for (long l = 0; l <= L; l++) {
        act[l] = malloc(ns * sz[l] * sizeof(double)); dact[l] = malloc(ns * sz[l] * sizeof(double));
    }
    for (long l = 0; l < L; l++) {
        W[l] = malloc(sz[l] * sz[l + 1] * sizeof(double)); B[l] = malloc(sz[l + 1] * sizeof(double));
        GW[l] = malloc(sz[l] * sz[l + 1] * sizeof(double)); GB[l] = malloc(sz[l + 1] * sizeof(double));
        for (long j = 0; j < sz[l + 1]; j++) {
            for (long i = 0; i < sz[l]; i++) W[l][j * sz[l] + i] = next_double();
            B[l][j] = next_double();
        }
        nparams += sz[l + 1] * (sz[l] + 1);
    }
    double *gate = malloc(2 * (nparams + 1) * sizeof(double));
    long m = 0;
    for (int rep = 0; rep < 2; rep++) {
        gate[m++] = dense_loss_and_grads();
        m += dense_grads(gate + m);
        dense_sgd(1.0);
    }
    printf("{\"bytes_per_node\": null,\n");
    print_list("gate", gate, m, 1);
    time_rounds("demo-step", dense_step, NULL, 0);
    printf("}\n");
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s tape-step|tape-chain|dense FILE\n", argv[0]);
        return 2;
    }
    in = fopen(argv[2], "r");
    if (!in) { perror(argv[2]); return 2; }
    if (!strcmp(argv[1], "tape-step")) run_tape(0);
    else if (!strcmp(argv[1], "tape-chain")) run_tape(1);
    else if (!strcmp(argv[1], "dense")) run_dense();
    else { fprintf(stderr, "unknown mode %s\n", argv[1]); return 2; }
    return 0;
}
