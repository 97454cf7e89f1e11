"""The floor: hand-written C loops (``floor.c``, beside this file), compiled at run time, that
show how far each engine is from the machine.

- ``c-tape``: a plain C loop (a switch per node) over the very scalar tape micrograd.Tape
  records, forward then reverse, for the chains and the demo step. No fusion of ops.
- ``c-dense``: the demo step written over dense arrays, as one would write an MLP in C.

The tapes are recorded here by the pure engine's ``micrograd.Tape`` and written as text, floats
in hex, so the C side starts from exactly the same numbers and op codes.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sysconfig
import threading
from typing import Any, Dict, List, Optional, Sequence

from micrograd.bench import timing, workloads

CFLAGS = ["-O2", "-ffp-contract=off"]  # as the extension is built: no fused multiply-add
SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "floor.c")


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
    bare = re.sub(r"\([^)]*\)", " ", version_line)  # drop '(Debian 12.2.0-14)' and the like
    number = re.search(r"\b\d+\.\d+(\.\d+)?\b", bare)
    words = bare.split()
    return f"{words[0]} {number.group(0)}" if words and number else version_line


def check_op_codes(source: str) -> None:
    """floor.c numbers the ops as micrograd/_ops.py does: its MG_OP_NAMES lists OPS's names in
    code order (a C program cannot import the table; this is where a drift is caught)."""
    from micrograd._ops import OPS

    found = re.search(r'#define MG_OP_NAMES "([^"]*)"', source)
    names = found.group(1).split() if found else None
    if names != [op.name for op in OPS]:
        raise RuntimeError(f"floor.c's op codes {names} are not micrograd._ops.OPS {[op.name for op in OPS]}")


def compile_floor(cc: str, workdir: str) -> str:
    """Compile floor.c into workdir; returns the program's path (CalledProcessError on
    failure, with the compiler's message)."""
    with open(SOURCE) as f:
        check_op_codes(f.read())
    exe = os.path.join(workdir, "micrograd_bench_floor")
    subprocess.run([cc, *CFLAGS, "-o", exe, SOURCE, "-lm"], check=True, capture_output=True, text=True)
    return exe


# ---------------------------------------------------------------------------------------------
# Writing tapes and problems for the C program


def tape_text(root: Any, params: Sequence[Any]) -> str:
    """The tape of the graph below root (a pure-engine Value) as the C program reads it: the
    counts (leaves, interior nodes, params, constant exponents), the exponents, the leaves'
    data, one 'op a b' line per interior node (children as slots), then the params' slots."""
    from micrograd.tape import PythonTape

    tape = PythonTape(root)
    codes, a, b, consts, _, n_leaves = tape._structure()
    slot = {id(v): i for i, v in enumerate(tape.leaves)}
    lines = [f"{n_leaves} {len(codes)} {len(params)} {len(consts)}"]
    lines.append(" ".join(k.hex() for k in consts))
    lines.append(" ".join(float(v.data).hex() for v in tape.leaves))
    lines += [f"{c} {ia} {ib}" for c, ia, ib in zip(codes, a, b)]
    lines.append(" ".join(str(slot[id(p)]) for p in params))
    return "\n".join(lines) + "\n"


def dense_text(problem: Dict[str, Any]) -> str:
    sizes, X, y = problem["sizes"], problem["X"], problem["y"]
    parts = [f"{len(X)} {len(sizes) - 1} {float(workloads.L2).hex()}", " ".join(map(str, sizes))]
    parts.append(" ".join(float(v).hex() for row in X for v in row))
    parts.append(" ".join(float(v).hex() for v in y))
    parts.append(" ".join(float(w).hex() for w in problem["weights"]))
    return "\n".join(parts) + "\n"


def run_floor(exe: str, mode: str, text: str, workdir: str, budget: timing.Budget, timeout: float) -> Dict[str, Any]:
    """Run the compiled program on one input; returns its JSON (gate, times, bytes_per_node).
    Each time it reports an estimate of a round, it is told the rounds by timing.rounds_for."""
    path = os.path.join(workdir, f"input-{mode}.txt")
    with open(path, "w") as f:
        f.write(text)
    proc = subprocess.Popen([exe, mode, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    answer: List[str] = []
    try:
        for line in proc.stdout:
            if line.startswith("estimate "):
                proc.stdin.write(f"{timing.rounds_for(float.fromhex(line.split()[1]), budget)}\n")
                proc.stdin.flush()
            else:
                answer.append(line)
        err = proc.stderr.read()
        rc = proc.wait()
    finally:
        timer.cancel()
    if rc != 0:
        raise RuntimeError(f"{os.path.basename(exe)} {mode} exited with {rc}: {err.strip()[:300]}")
    return json.loads("".join(answer))


def graph_tape(setup: Any, *args: Any) -> str:
    """The tape text of a workload's graph, built by the pure engine with the package's nn."""
    graph, params = setup(workloads.package_kit("python"), *args)
    graph.forward()
    return tape_text(graph.root, params)


def chain_tape(n: int) -> str:
    return graph_tape(workloads.chain_setup, n)


def demo_tape(problem: Dict[str, Any]) -> str:
    return graph_tape(workloads.demo_setup, problem)


def gate_values(result: Dict[str, Any]) -> List[float]:
    return [float(v) for v in result["gate"]]
