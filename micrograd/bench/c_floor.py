"""The floor: hand-written C loops, compiled at run time, that show how far each engine is from
the machine.

- ``c-tape``: a plain C loop (a switch per node) over the very scalar tape the engines build,
  in micrograd.Tape's layout (leaves first, then per interior node an op code and two child
  slots; data and grad per slot), forward then reverse, for the chains and the demo step. No
  fusion of ops: micrograd's compiled tape, which runs a neuron's mul-add pairs as one step,
  can beat it.
- ``c-dense``: the demo step written over dense arrays, as one would write an MLP in C.

The tapes are made here with the pure engine (the op symbols of ``Value._op`` and the children
in ``_prev``, in the order backward() visits them) and written as text, floats in hex, so the C
side starts from exactly the same numbers. The C source is kept in this module (not a .c file)
so that it ships with the package without any package-data rule.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sysconfig
from typing import Any, Dict, List, Optional, Sequence

from micrograd.bench import workloads

CFLAGS = ["-O2", "-ffp-contract=off"]  # as the extension is built: no fused multiply-add
OP_CODES = {"": 0, "+": 1, "*": 2, "**": 4, "ReLU": 5, "tanh": 6, "exp": 7, "log": 8, "sigmoid": 9}
POWC = 3

C_SOURCE = r"""
/* micrograd bench: the C floor (see micrograd/bench/c_floor.py). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { LEAF, ADD, MUL, POWC, POW, RELU, TANH, EXP, LOG, SIGMOID };

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static FILE *in;
static double next_double(void) {
    char tok[128];
    if (fscanf(in, "%127s", tok) != 1) { fprintf(stderr, "input ended early\n"); exit(2); }
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

/* Timing: one warm-up round says how long a round takes, then as many rounds as fit in the
   budget, within [min_rounds, max_rounds]; the same rule as micrograd/bench/worker.py. */
static double budget_s; static long min_rounds, max_rounds;
static long rounds_for(double estimate) {
    long r = (long)(budget_s / (estimate > 1e-9 ? estimate : 1e-9));
    return r < min_rounds ? min_rounds : (r > max_rounds ? max_rounds : r);
}

/* ---- the scalar tape -----------------------------------------------------------------------
   The layout of micrograd's own tape: slots 0..L-1 are the leaves, L..N-1 the interior nodes in
   eager backward's order (the root last); per interior node an op code and two child slots
   (for powc, b indexes the table of constant exponents). A plain loop with a switch per node. */
typedef struct {
    long nleaves, ninterior, n, nparams, nconsts;
    unsigned char *op;
    int *a, *b;
    double *consts, *data, *grad;
    long *params;
} Tape;

static void read_tape(Tape *t) {
    t->nleaves = next_long(); t->ninterior = next_long(); t->nparams = next_long(); t->nconsts = next_long();
    t->n = t->nleaves + t->ninterior;
    t->op = malloc(t->ninterior + 1); t->a = malloc((t->ninterior + 1) * sizeof(int));
    t->b = malloc((t->ninterior + 1) * sizeof(int)); t->consts = malloc((t->nconsts + 1) * sizeof(double));
    t->data = malloc(t->n * sizeof(double)); t->grad = calloc(t->n, sizeof(double));
    t->params = malloc((t->nparams + 1) * sizeof(long));
    for (long i = 0; i < t->nconsts; i++) t->consts[i] = next_double();
    for (long i = 0; i < t->nleaves; i++) t->data[i] = next_double();
    for (long j = 0; j < t->ninterior; j++) {
        t->op[j] = (unsigned char)next_long(); t->a[j] = (int)next_long(); t->b[j] = (int)next_long();
    }
    for (long i = 0; i < t->nparams; i++) t->params[i] = next_long();
}

static void forward(Tape *t) {
    double *d = t->data;
    const long L = t->nleaves;
    for (long j = 0; j < t->ninterior; j++) {
        const int a = t->a[j], b = t->b[j];
        double x, e, r = 0.0;
        switch (t->op[j]) {
        case ADD: r = d[a] + d[b]; break;
        case MUL: r = d[a] * d[b]; break;
        case POWC: r = pow(d[a], t->consts[b]); break;
        case POW: r = pow(d[a], d[b]); break;
        case RELU: r = d[a] < 0 ? 0.0 : d[a]; break;
        case TANH: r = tanh(d[a]); break;
        case EXP: r = exp(d[a]); break;
        case LOG: r = log(d[a]); break;
        case SIGMOID:
            x = d[a];
            if (x >= 0.0) r = 1.0 / (1.0 + exp(-x));
            else { e = exp(x); r = e / (1.0 + e); }
            break;
        }
        d[L + j] = r;
    }
}

/* zero_grad for every slot, root's grad 1, then the chain rule in reverse (the rules of _ops.py) */
static void backward(Tape *t) {
    double *d = t->data, *g = t->grad;
    const long L = t->nleaves;
    memset(g, 0, t->n * sizeof(double));
    g[t->n - 1] = 1.0;
    for (long j = t->ninterior - 1; j >= 0; j--) {
        const long i = L + j;
        const int a = t->a[j], b = t->b[j];
        double gi = g[i], k, s;
        switch (t->op[j]) {
        case ADD: g[a] += gi; g[b] += gi; break;
        case MUL: g[a] += d[b] * gi; g[b] += d[a] * gi; break;
        case POWC: k = t->consts[b]; g[a] += (k * pow(d[a], k - 1.0)) * gi; break;
        case POW:
            k = d[b];
            g[a] += (k * pow(d[a], k - 1.0)) * gi;
            g[b] += (d[a] > 0.0 ? d[i] * log(d[a]) : (d[a] == 0.0 && k >= 0.0 ? 0.0 : NAN)) * gi;
            break;
        case RELU: g[a] += (d[i] > 0) * gi; break;
        case TANH: s = d[i]; g[a] += (1.0 - s * s) * gi; break;
        case EXP: g[a] += d[i] * gi; break;
        case LOG: g[a] += gi / d[a]; break;
        case SIGMOID: s = d[i]; g[a] += (s * (1.0 - s)) * gi; break;
        }
    }
}

static void sgd(Tape *t, double lr) {
    for (long i = 0; i < t->nparams; i++) t->data[t->params[i]] -= lr * t->grad[t->params[i]];
}

static double lr_of(long k) { return 1.0 - 0.9 * (double)(k % 100) / 100; }

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
    double t0, est, *times;
    long r, k = 0;
    if (chain) {
        t0 = now(); forward(&t); est = now() - t0;
        r = rounds_for(est); times = malloc(r * sizeof(double));
        for (long i = 0; i < r; i++) { t0 = now(); forward(&t); times[i] = now() - t0; }
        print_list("chain-forward", times, r, 1); free(times);
        t0 = now(); backward(&t); est = now() - t0;
        r = rounds_for(est); times = malloc(r * sizeof(double));
        for (long i = 0; i < r; i++) { t0 = now(); backward(&t); times[i] = now() - t0; }
        print_list("chain-backward", times, r, 0); free(times);
    } else {
        t0 = now(); forward(&t); backward(&t); sgd(&t, lr_of(k++)); est = now() - t0;
        r = rounds_for(est); times = malloc(r * sizeof(double));
        for (long i = 0; i < r; i++) {
            t0 = now(); forward(&t); backward(&t); sgd(&t, lr_of(k++)); times[i] = now() - t0;
        }
        print_list("demo-step", times, r, 0); free(times);
    }
    printf("}\n");
}

/* ---- the demo step over dense arrays --------------------------------------------------------- */
#define MAXL 8
static long L, sz[MAXL + 1], ns;
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
        for (long i = 0; i < nw; i++) { reg += W[l][i] * W[l][i]; GW[l][i] += W[l][i] * ALPHA; GW[l][i] += W[l][i] * ALPHA; }
        for (long j = 0; j < sz[l + 1]; j++) { reg += B[l][j] * B[l][j]; GB[l][j] += B[l][j] * ALPHA; GB[l][j] += B[l][j] * ALPHA; }
    }
    return data_loss + reg * ALPHA;
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

static void run_dense(void) {
    ns = next_long(); L = next_long();
    if (L > MAXL) { fprintf(stderr, "too many layers\n"); exit(2); }
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
    long k = 0;
    double t0 = now();
    dense_loss_and_grads(); dense_sgd(lr_of(k++));
    long r = rounds_for(now() - t0);
    double *times = malloc(r * sizeof(double));
    for (long i = 0; i < r; i++) {
        t0 = now(); dense_loss_and_grads(); dense_sgd(lr_of(k++)); times[i] = now() - t0;
    }
    print_list("demo-step", times, r, 0);
    printf("}\n");
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s tape-step|tape-chain|dense FILE BUDGET_S MIN_ROUNDS MAX_ROUNDS\n", argv[0]);
        return 2;
    }
    in = fopen(argv[2], "r");
    if (!in) { perror(argv[2]); return 2; }
    budget_s = strtod(argv[3], NULL); min_rounds = atol(argv[4]); max_rounds = atol(argv[5]);
    if (!strcmp(argv[1], "tape-step")) run_tape(0);
    else if (!strcmp(argv[1], "tape-chain")) run_tape(1);
    else if (!strcmp(argv[1], "dense")) run_dense();
    else { fprintf(stderr, "unknown mode %s\n", argv[1]); return 2; }
    return 0;
}
"""


# ---------------------------------------------------------------------------------------------
# The compiler


def find_compiler() -> Optional[str]:
    """A C compiler: $CC, the one Python was built with, else cc/gcc/clang on PATH."""
    candidates = [os.environ.get("CC", ""), (sysconfig.get_config_var("CC") or "").split(" ")[0], "cc", "gcc", "clang"]
    for name in candidates:
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def compiler_version(cc: str) -> str:
    """The first line of ``cc --version`` (e.g. 'gcc (Debian 12.2.0-14) 12.2.0')."""
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.splitlines()[0].strip() if out else "unknown"


def short_version(version_line: str) -> str:
    """'gcc 12.2.0' from 'gcc (Debian 12.2.0-14) 12.2.0'; 'clang 16.0.6' from 'clang version 16.0.6'."""
    import re

    bare = re.sub(r"\([^)]*\)", " ", version_line)  # drop '(Debian 12.2.0-14)' and the like
    number = re.search(r"\b\d+\.\d+(\.\d+)?\b", bare)
    words = bare.split()
    return f"{words[0]} {number.group(0)}" if words and number else version_line


def compile_floor(cc: str, workdir: str) -> str:
    """Compile the C source into workdir; returns the program's path (CalledProcessError on
    failure, with the compiler's message)."""
    src = os.path.join(workdir, "micrograd_bench_floor.c")
    exe = os.path.join(workdir, "micrograd_bench_floor")
    with open(src, "w") as f:
        f.write(C_SOURCE.replace("ALPHA", repr(workloads.L2)))
    subprocess.run([cc, *CFLAGS, "-o", exe, src, "-lm"], check=True, capture_output=True, text=True)
    return exe


# ---------------------------------------------------------------------------------------------
# Writing tapes and problems for the C program


def tape_text(root: Any, params: Sequence[Any]) -> str:
    """The graph below root as the C program reads it, in micrograd's tape layout: the counts
    (leaves, interior nodes, params, constant exponents), the exponents, the leaves' data, one
    'op a b' line per interior node (children as slots), then the params' slots."""
    order = workloads.topological_order(root)
    leaves = [v for v in order if not v._prev]
    interior = [v for v in order if v._prev]
    slot = {id(v): i for i, v in enumerate(leaves + interior)}
    consts: Dict[float, int] = {}
    ops = []
    for node in interior:
        op = node._op
        kids = [slot[id(c)] for c in node._prev]
        if op.startswith("**") and len(op) > 2:  # a constant exponent: b is its index in consts
            ops.append(f"{POWC} {kids[0]} {consts.setdefault(float(op[2:]), len(consts))}")
        else:
            ops.append(f"{OP_CODES[op]} {kids[0]} {kids[1] if len(kids) > 1 else -1}")
    lines = [f"{len(leaves)} {len(interior)} {len(params)} {len(consts)}"]
    lines.append(" ".join(k.hex() for k in consts))
    lines.append(" ".join(float(v.data).hex() for v in leaves))
    lines += ops
    lines.append(" ".join(str(slot[id(p)]) for p in params))
    return "\n".join(lines) + "\n"


def dense_text(problem: Dict[str, Any]) -> str:
    sizes, X, y = problem["sizes"], problem["X"], problem["y"]
    parts = [f"{len(X)} {len(sizes) - 1}", " ".join(map(str, sizes))]
    parts.append(" ".join(float(v).hex() for row in X for v in row))
    parts.append(" ".join(float(v).hex() for v in y))
    parts.append(" ".join(float(w).hex() for w in problem["weights"]))
    return "\n".join(parts) + "\n"


def run_floor(exe: str, mode: str, text: str, workdir: str, budget: Dict[str, Any], timeout: float) -> Dict[str, Any]:
    """Run the compiled program on one input; returns its JSON (gate, times, bytes_per_node)."""
    path = os.path.join(workdir, f"input-{mode}.txt")
    with open(path, "w") as f:
        f.write(text)
    args = [exe, mode, path, repr(float(budget["seconds"])), str(budget["min_rounds"]), str(budget["max_rounds"])]
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{os.path.basename(exe)} {mode} exited with {done.returncode}: {done.stderr.strip()[:300]}")
    return json.loads(done.stdout)


def pure_kit() -> workloads.ValueKit:
    from micrograd.engine import ENGINES

    return workloads.ValueKit("python", ENGINES["python"])


def chain_tape(n: int) -> str:
    kit = pure_kit()
    graph, params = workloads.chain_setup(kit, n)
    graph.forward()
    return tape_text(graph.root, params)


def demo_tape(problem: Dict[str, Any]) -> str:
    kit = pure_kit()
    graph, params = workloads.demo_setup(kit, problem)
    graph.forward()
    return tape_text(graph.root, params)


def gate_values(result: Dict[str, Any]) -> List[float]:
    return [float(v) for v in result["gate"]]
