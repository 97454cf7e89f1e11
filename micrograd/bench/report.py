"""Turning one run into what people read and cite: speed-up ratios, the targets, the text
table, the Markdown section for the README, and the JSON file."""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

from micrograd.bench import toy, workloads
from micrograd.bench.runner import ALL_GATES, ALL_WORKLOADS, ENGINES, SUITES, TORCH_PIN, WORKLOAD_ABOUT

SCHEMA = "micrograd-bench/1"

METHODS = {
    "isolation": "each engine runs in its own subprocess, one after another; one thread everywhere "
    "(torch.set_num_threads(1); OMP/MKL/OpenBLAS threads 1)",
    "timing": "one warm-up round, then as many rounds as fit in the time budget, within the minimum and "
    "maximum number of rounds; reported: median, min and max of the rounds (time.perf_counter); garbage "
    "collector on, as in a user's program (and pytest-benchmark's default), with the objects that existed "
    "before the measurement frozen out of it (gc.freeze)",
    "fresh_memory": "building a big graph includes the page faults of touching new memory: when a freed "
    "graph empties one of CPython's arenas it goes back to the OS, and the next graph maps it again. A "
    "process whose heap is pinned by long-lived objects (a long pytest session) reuses that memory and "
    "builds big graphs faster, so each engine runs in a fresh process, where all start alike",
    "gate": "before any timing, each engine computes each workload's output and every parameter gradient, "
    "twice (the second time after the leaves changed), from the same seeded data and weights; these must "
    "equal the pure engine's exactly for this package's engines, and within 1e-9 relative for the others; "
    "a workload whose gate fails is reported and not timed",
    "update": "the demo step's zero_grad and SGD update (and the gate's): this package's engines (python, "
    "cython, python-tape, cython-tape) use the package's own optimizer, micrograd.optim.SGD, its lr set to the "
    "demo's schedule before each step, as a user of the package writes a training loop for speed; on "
    "compiled-engine parameters it is one C loop over them (micrograd._optim), with the same bits as the demo's "
    "p.data -= lr * p.grad. Karpathy's micrograd and torch-scalar keep the demo's Python loops over the "
    "parameters (they have no micrograd.optim), torch-batched updates its weight tensors in place, and the C "
    "floors do both in C. The toy suite uses micrograd.optim on this package's engines and torch.optim on torch",
    "tape_leaves": "the toy suite's tapes are told what a PyTorch user tells autograd: "
    "Tape(loss, params=the model's parameters, constants=the dataset's input Values) for the MLPs, whose data "
    "is the same every step (backward writes only the parameters' grads; forward reads the inputs once, at "
    "capture), and params= alone for the GPT, whose one-hot input leaves are loaded every step; the eager "
    "contenders compute every leaf's grad, as Karpathy's code does, and torch's inputs do not require grad",
    "ns_per_node": "median time / the number of nodes in the workload's graph, counted once by walking the "
    "pure engine's graph (node-creation: per op)",
    "ratios": "x python = the pure engine's median / this engine's median on the same workload and size, "
    "in this run; x karpathy likewise with Karpathy's micrograd 0.1.0",
    "memory": "bytes per live node: the growth of the resident set while a chain is built in a fresh "
    "process, divided by its nodes; 'Python heap' is tracemalloc's count for the same build (blind to "
    "plain malloc, as torch's); tape: the growth while micrograd.Tape records that chain",
    "depth": "the largest chain depth whose backward() works and gives the right gradient, trying 10^2, "
    "10^3, ... in the engine's process (a crash counts as a failure), bisected after an exception, "
    "stopped by a time cap",
}


# ---------------------------------------------------------------------------------------------
# Numbers


def fmt_time(seconds: Optional[float]) -> str:
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if seconds >= 0.9995 * scale or unit == "ns":  # 999.6 us rounds to 1 ms, not "1e+03 us"
            v = seconds / scale
            return f"{v:.3g} {unit}" if v < 1000 else f"{v:.0f} {unit}"
    return f"{seconds} s"


def fmt_num(x: Optional[float], digits: int = 3) -> str:
    if x is None:
        return "-"
    if x >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def fmt_ratio(x: Optional[float]) -> str:
    if x is None:
        return "-"
    return f"{x:,.0f}x" if x >= 100 else f"{x:.3g}x"


def find(run: Dict[str, Any], engine: str, workload: str, size: Optional[int] = None) -> Optional[Dict[str, Any]]:
    for row in run["results"]:
        if row["engine"] == engine and row["workload"] == workload and row["size"] == size and "median" in row:
            return row
    return None


def add_ratios(run: Dict[str, Any]) -> None:
    """x python and x karpathy on every timed row (how many times faster), from this run."""
    for row in run["results"]:
        if "median" not in row:
            continue
        for ref, key in (("python", "vs_python"), ("karpathy", "vs_karpathy")):
            base = find(run, ref, row["workload"], row["size"])
            row[key] = base["median"] / row["median"] if base else None


def largest(run: Dict[str, Any], engine: str, workload: str) -> Optional[Dict[str, Any]]:
    rows = [r for r in run["results"] if r["engine"] == engine and r["workload"] == workload and "median" in r]
    return max(rows, key=lambda r: r["size"] or 0) if rows else None


# ---------------------------------------------------------------------------------------------
# Targets (from the project's issues): reported as PASS/FAIL, never an exit code


def _why_missing(run: Dict[str, Any], engine: str) -> str:
    entry = run["engines"].get(engine)
    if entry is None:
        return f"not checked: {engine} not run"
    if entry["status"] in ("skipped", "error"):
        return f"not checked: {engine} {entry['status']}"
    return f"not checked: {engine} has no timing"


def targets(run: Dict[str, Any]) -> List[Dict[str, Any]]:
    out: List[Dict[str, Any]] = []
    in_run = set(run.get("config", {}).get("workloads", ALL_WORKLOADS))

    def target(name: str, check, workload: str) -> None:
        """A target is listed when the run has the workload it is about ('core': any of that suite's)."""
        if not (in_run & set(SUITES["core"]) if workload == "core" else workload in in_run):
            return
        try:
            passed, detail = check()
        except LookupError as missing:  # raised with the engine whose figure is missing
            out.append({"target": name, "status": "n/a", "detail": _why_missing(run, missing.args[0])})
            return
        out.append({"target": name, "status": "PASS" if passed else "FAIL", "detail": detail})

    def median(engine: str, workload: str, size: Optional[int] = None) -> float:
        row = find(run, engine, workload, size)
        if row is None:
            raise LookupError(engine)
        return row["median"]

    def memory(engine: str, key: str) -> float:
        value = run["engines"].get(engine, {}).get("memory", {}).get(key)
        if value is None:
            raise LookupError(engine)
        return value

    def speedup() -> tuple:
        k, c = median("karpathy", "demo-step"), median("cython", "demo-step")
        return k / c >= 100, f"{k / c:,.0f}x ({fmt_time(c)} vs {fmt_time(k)})"

    def pure_vs_karpathy() -> tuple:
        k, p = median("karpathy", "demo-step"), median("python", "demo-step")
        return p <= k, f"{k / p:.2f}x ({fmt_time(p)} vs {fmt_time(k)})"

    def per_node(workload: str, limit: float):
        def check() -> tuple:
            row = largest(run, "cython", workload)
            if row is None:
                raise LookupError("cython")
            return row["ns_per_node"] < limit, f"{row['ns_per_node']:.1f} ns/node at n={row['size']:,}"

        return check

    def bytes_live() -> tuple:
        b = memory("cython", "rss_per_node")
        return b <= 100, f"{b:.1f} bytes/node (resident set growth)"

    def tape_vs_torch() -> tuple:
        t, b = median("cython-tape", "demo-step"), median("torch-batched", "demo-step")
        return t < b, f"{fmt_time(t)} vs {fmt_time(b)} ({b / t:.2f}x)"

    def tape_vs_c() -> tuple:
        t, c = median("cython-tape", "demo-step"), median("c-tape", "demo-step")
        return t <= 2 * c, f"{t / c:.2f}x the C loop ({fmt_time(t)} vs {fmt_time(c)})"

    def tape_bytes() -> tuple:
        b = memory("cython-tape", "tape_rss_per_node")
        return b <= 32, f"{b:.1f} bytes/recorded node (resident set growth)"

    target("demo-step: compiled engine at least 100x faster than Karpathy's micrograd 0.1.0", speedup, "demo-step")
    target("demo-step: pure engine no slower than Karpathy's micrograd 0.1.0", pure_vs_karpathy, "demo-step")
    target("chain-forward: compiled engine under 120 ns per node (largest n)", per_node("chain-forward", 120), "chain-forward")
    target("chain-backward: compiled engine under 15 ns per node (largest n)", per_node("chain-backward", 15), "chain-backward")
    target("memory: compiled engine at most 100 bytes per live node", bytes_live, "core")
    target("demo-step: tape replay faster than PyTorch batched float64", tape_vs_torch, "demo-step")
    target("demo-step: tape replay within 2x of the C loop over the same tape", tape_vs_c, "demo-step")
    target("memory: tape at most 32 bytes per recorded node", tape_bytes, "core")

    def tape_vs_dense() -> tuple:
        t, c = median("cython-tape", "demo-step"), median("c-dense", "demo-step")
        return t <= 1.5 * c, f"{t / c:.2f}x the dense C loop ({fmt_time(t)} vs {fmt_time(c)})"

    def toy_vs_torch(workload: str):
        def check() -> tuple:
            t, b = median("cython-tape", workload), median("torch-batched", workload)
            return t <= b, f"{t / b:.2f}x torch's time ({fmt_time(t)} vs {fmt_time(b)})"

        return check

    target("demo-step: tape replay at most 1.5x the dense C loop (c-dense)", tape_vs_dense, "demo-step")
    for workload in toy.TOY:
        target(f"{workload}: the tape's training step no slower than PyTorch's (float64, 1 thread)",
               toy_vs_torch(workload), workload)
    return out


# ---------------------------------------------------------------------------------------------
# The toy suite's table: one training step per workload and contender, tape against torch

TOY_ENGINES = {"python": "python", "cython": "cython", "python-tape": "python-tape",
               "cython-tape": "cython-tape", "torch-batched": "torch"}  # engine -> column


def toy_workloads(run: Dict[str, Any]) -> List[str]:
    """The toy workloads of this run, in suite order."""
    asked = set(run.get("config", {}).get("workloads", ())) | {r["workload"] for r in run["results"]}
    return [w for w in toy.TOY if w in asked]


def toy_cell(run: Dict[str, Any], engine: str, workload: str) -> str:
    """A contender's time on a toy workload, or why there is none."""
    entry = run["engines"].get(engine)
    if entry is None:
        return "-"
    if entry["status"] == "skipped":
        if engine.startswith("torch") and "not installed" in entry.get("reason", ""):
            return f"not installed (pip install {TORCH_PIN})"
        return "skipped"
    row = next((r for r in run["results"] if r["engine"] == engine and r["workload"] == workload), None)
    if row is None:
        return "-"
    if "median" in row:
        return fmt_time(row["median"])
    if row.get("not_run"):
        return f"not run: est. {fmt_time(row['estimate_s'])}"
    return "gate failed" if row.get("gate_failed") else "error"


def toy_summary(run: Dict[str, Any]) -> Dict[str, Any]:
    """The toy suite's table as data (run['toy'] in the JSON): per workload, its node count,
    each contender's median step (None where it has none, with ``cells`` saying why) and
    tape/torch, the compiled tape's time over PyTorch's."""
    rows = []
    for workload in toy_workloads(run):
        nodes = next((r["nodes"] for r in run["results"] if r["workload"] == workload and r.get("nodes")), None)
        medians = {e: (find(run, e, workload) or {}).get("median") for e in TOY_ENGINES}
        tape, torch = medians["cython-tape"], medians["torch-batched"]
        rows.append({
            "workload": workload, "about": WORKLOAD_ABOUT[workload], "nodes": nodes, "median": medians,
            "cells": {e: toy_cell(run, e, workload) for e in TOY_ENGINES},
            "tape_vs_torch": tape / torch if tape and torch else None,
        })
    return {"rows": rows, "data": run.get("toy_data", {})}


def toy_table(run: Dict[str, Any]) -> tuple:
    """(headers, rows, notes) for the text and Markdown tables."""
    summary = run.get("toy") or toy_summary(run)
    headers = ["workload", "nodes"] + list(TOY_ENGINES.values()) + ["tape/torch"]
    rows = [
        [r["workload"], fmt_num(r["nodes"]) if r["nodes"] else "-"] + [r["cells"][e] for e in TOY_ENGINES]
        + [fmt_ratio(r["tape_vs_torch"])]
        for r in summary["rows"]
    ]
    notes = [f"{r['workload']}: {r['about']}" for r in summary["rows"]]
    notes += [f"{family} data: {source}" for family, source in summary["data"].items()]
    return headers, rows, notes


TOY_TITLE = ("Toy suite: one training step (forward, zero_grad, backward, optimizer update), median; "
             "torch = torch-batched; tape/torch = cython-tape's time / torch's (below 1: the tape is faster)")


# ---------------------------------------------------------------------------------------------
# Text


def _table(headers: List[str], rows: List[List[str]], align: str) -> List[str]:
    """align: one of '<' '>' per column."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: List[str]) -> str:
        return "  " + "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths)).rstrip()

    return [line(headers)] + [line(r) for r in rows]


def engine_order(run: Dict[str, Any]) -> List[str]:
    return [e for e in ENGINES if e in run["engines"]]


def sections(run: Dict[str, Any]) -> List[tuple]:
    """(workload, size) in report order, for every pair that any engine ran."""
    seen = {(r["workload"], r["size"]) for r in run["results"]}
    return [(w, s) for w in ALL_WORKLOADS for s in sorted({s for (w2, s) in seen if w2 == w}, key=lambda v: v or 0)]


def timing_rows(run: Dict[str, Any], workload: str, size: Optional[int]) -> tuple:
    """(rows, notes): a row per engine that ran this; a note per engine that was not timed."""
    rows, notes = [], []
    for engine in engine_order(run):
        row = next((r for r in run["results"] if r["engine"] == engine and r["workload"] == workload and r["size"] == size), None)
        if row is None:
            continue
        if "median" not in row:
            error = row.get("error", "")
            short = "gate failed" if row.get("gate_failed") else error.split(":")[0]
            rows.append([engine, short, "-", "-", "-", "-"])
            notes.append(f"{engine}: {error}")
            continue
        rows.append([
            engine,
            fmt_time(row["median"]),
            f"{fmt_time(row['min'])} - {fmt_time(row['max'])}",
            fmt_num(row["ns_per_node"]),
            fmt_ratio(row.get("vs_python")),
            fmt_ratio(row.get("vs_karpathy")),
        ])
    return rows, notes


def section_title(run: Dict[str, Any], workload: str, size: Optional[int]) -> str:
    rows = [r for r in run["results"] if r["workload"] == workload and r["size"] == size]
    nodes = rows[0]["nodes"] if rows else None
    name = workload if size is None else f"{workload}, n = {size:,}"
    what = WORKLOAD_ABOUT[workload]
    return f"{name} ({nodes:,} nodes): {what}" if nodes else f"{name}: {what}"


def scaling_rows(run: Dict[str, Any]) -> tuple:
    sizes = sorted({r["size"] for r in run["results"] if r["size"] is not None})
    headers = ["engine"] + [f"fwd {s:,}" for s in sizes] + [f"bwd {s:,}" for s in sizes]
    rows = []
    for engine in engine_order(run):
        cells, any_value = [engine], False
        for workload in ("chain-forward", "chain-backward"):
            for s in sizes:
                row = find(run, engine, workload, s)
                cells.append(fmt_num(row["ns_per_node"]) if row else "-")
                any_value |= row is not None
        if any_value:
            rows.append(cells)
    return headers, rows


def depth_text(depth: Optional[Dict[str, Any]]) -> str:
    if not depth:
        return "-"
    ok = depth.get("largest_ok") or 0
    if depth.get("first_failure"):
        error = (depth.get("error") or "").split(":")[0]
        return f"{ok:,} (fails at {depth['first_failure']:,}: {error})"
    if depth.get("capped"):
        return f">= {ok:,} (time cap)"
    return f">= {ok:,} (largest tried)"


MEMORY_HEADERS = ["engine", "bytes/live node", "Python heap", "tape bytes/node", "capture peak", "tape arrays", "largest chain depth back-propagated"]


def memory_rows(run: Dict[str, Any]) -> List[List[str]]:
    rows = []
    for engine in engine_order(run):
        entry = run["engines"][engine]
        mem, depth = entry.get("memory") or {}, entry.get("depth")
        if not mem and not depth:
            continue
        rows.append([
            engine,
            fmt_num(mem.get("rss_per_node")),
            fmt_num(mem.get("traced_per_node")),
            fmt_num(mem.get("tape_rss_per_node")),
            fmt_num(mem.get("tape_capture_peak_per_node")),
            fmt_num(mem.get("tape_nbytes_per_node", mem.get("tape_layout_bytes_per_node"))),
            depth_text(depth),
        ])
    return rows


def gate_rows(run: Dict[str, Any]) -> tuple:
    names = [g for g in ALL_GATES if any(g in e.get("gates", {}) for e in run["engines"].values())]
    rows = []
    for engine in engine_order(run):
        gates = run["engines"][engine].get("gates", {})
        if not gates:
            continue
        cells = [engine]
        for g in names:
            v = gates.get(g)
            if v is None:
                cells.append("-")
            elif v["passed"]:
                cells.append(f"ok {v['max_abs_diff']:.1e}" if v["max_abs_diff"] else "ok, exact")
            else:
                cells.append("FAILED " + (v.get("error") or f"{v['max_abs_diff']!r}").split(":")[0])
        rows.append(cells)
    return ["engine"] + names, rows


def machine_line(run: Dict[str, Any]) -> str:
    m = run["machine"]
    parts = [m["cpu"], f"{m['cores_usable']} cores usable", m["os"], f"Python {m['python']}"]
    if m.get("cython"):
        parts.append(f"Cython {m['cython']}")
    if m.get("c_compiler_version"):
        parts.append(m["c_compiler_version"])
    if m.get("torch"):
        parts.append(f"torch {m['torch']}")
    return ", ".join(parts)


def busy_warning(run: Dict[str, Any]) -> Optional[str]:
    """A warning when other processes were using the cores: the figures are then noisy."""
    m = run["machine"]
    loads = [x for x in (m.get("load_average_at_start") or [])[:1] + (run.get("load_average_at_end") or [])[:1]]
    cores = m.get("cores_usable") or 1
    if loads and max(loads) > 0.5 * cores + 0.5:
        return (
            f"WARNING: the machine was busy (1-minute load average up to {max(loads):.2f} on {cores} cores): "
            "timings are noisy, and ratios between engines run at different moments can be off; "
            "re-run on a quiet machine before citing them."
        )
    return None


def text(run: Dict[str, Any]) -> str:
    cfg = run["config"]
    b = cfg["budget"]
    lines = [
        f"micrograd bench{' --quick' if cfg['quick'] else ''}: {machine_line(run)}",
        f"load average at start {run['machine'].get('load_average_at_start')}, at end {run.get('load_average_at_end')}; "
        f"{b['seconds']:g} s per measurement, {b['min_rounds']}-{b['max_rounds']} rounds; each engine in its own "
        "subprocess, one thread, GC on.",
        "median (min - max) of the rounds; ns/node = median / graph nodes; Nx = N times faster than the pure "
        "engine (x python) or Karpathy's micrograd (x karpathy), from this run.",
        "",
        "Engines",
    ]
    rows = []
    for engine in engine_order(run):
        e = run["engines"][engine]
        rows.append([engine, e["status"], e.get("version", ""), e.get("reason", e["about"])])
    lines += _table(["engine", "status", "version", "what / why"], rows, "<<<<")
    headers, rows = gate_rows(run)
    if rows:
        lines += ["", "Correctness gate (max abs diff from the pure engine; ours exact, peers within 1e-9 relative)"]
        lines += _table(headers, rows, "<" * len(headers))
    for workload, size in sections(run):
        rows, notes = timing_rows(run, workload, size)
        lines += ["", section_title(run, workload, size)]
        lines += _table(["engine", "median", "min - max", "ns/node", "x python", "x karpathy"], rows, "<>>>>>")
        lines += [f"    {note}" for note in notes]
    headers, rows, notes = toy_table(run)
    if rows:
        lines += ["", TOY_TITLE]
        lines += _table(headers, rows, "<" + ">" * (len(headers) - 1))
        lines += [f"    {note}" for note in notes]
    headers, rows = scaling_rows(run)
    if rows:
        lines += ["", "How the cost per node grows with the chain (ns per node, median)"]
        lines += _table(headers, rows, "<" + ">" * (len(headers) - 1))
    rows = memory_rows(run)
    if rows:
        lines += ["", f"Memory (chain of {cfg['memory_n']:,} ops) and depth"]
        lines += _table(MEMORY_HEADERS, rows, "<>>>>><")
        lines += [
            "  bytes/live node: resident-set growth while the chain is built, per node; Python heap: the same by",
            "  tracemalloc; tape bytes/node: resident-set growth when micrograd.Tape records and replays it;",
            "  capture peak: the resident set's peak while the tape records, above the built graph, per node;",
            "  tape arrays: the size the tape gives for its own arrays (Tape.nbytes; c-tape: its layout).",
        ]
    lines += ["", "Targets (reported only: they never change the exit code)"]
    for t in run["targets"]:
        lines.append(f"  {t['status']:<4}  {t['target']}: {t['detail']}")
    skipped = [(e, v["reason"]) for e, v in run["engines"].items() if v["status"] == "skipped"]
    if skipped:
        lines += ["", "Skipped (nothing failed; to include them:)"]
        lines += [f"  {e}: {why}" for e, why in skipped]
    busy = busy_warning(run)
    if busy:
        lines += ["", busy]
    lines += ["", f"finished in {run['seconds']:.0f} s"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Markdown (the README's results section) and JSON


def _md_table(headers: List[str], rows: List[List[str]], align: str) -> List[str]:
    sep = ["---:" if a == ">" else "---" for a in align]
    return ["| " + " | ".join(headers) + " |", "| " + " | ".join(sep) + " |"] + ["| " + " | ".join(r) + " |" for r in rows]


def markdown(run: Dict[str, Any], plot_path: Optional[str] = None) -> str:
    lines = [
        f"Generated by `{run['command']}` on {run['created_utc'][:10]}: {machine_line(run)}. "
        f"Load average {run['machine'].get('load_average_at_start')} at the start. "
        "Each engine ran in its own subprocess with one thread; times are the median (min - max) of the "
        "rounds; `x python` and `x karpathy` say how many times faster than the pure engine and than "
        "Karpathy's micrograd 0.1.0, in this run.",
        "",
    ]
    headers, rows, notes = toy_table(run)
    if rows:  # first: the toy suite's table is what its readers come for
        lines += [f"**{TOY_TITLE}**", ""]
        lines += _md_table(headers, rows, "<" + ">" * (len(headers) - 1))
        lines += [""] + [f"- {note}" for note in notes] + [""]
    for workload, size in sections(run):
        if workload in workloads.SIZED:
            continue
        rows, notes = timing_rows(run, workload, size)
        lines += [f"**{section_title(run, workload, size)}**", ""]
        lines += _md_table(["engine", "median", "min - max", "ns/node", "x python", "x karpathy"], rows, "<>>>>>")
        lines += [""] + [f"- {note}" for note in notes] + ([""] if notes else [])
    headers, rows = scaling_rows(run)
    if rows:
        lines += ["**Chains: ns per node as the graph grows** (forward builds the chain; backward runs on a fresh graph)", ""]
        lines += _md_table(headers, rows, "<" + ">" * (len(headers) - 1))
        lines.append("")
    if plot_path:
        lines += [f"![cost against graph size, every engine]({plot_path})", ""]
    rows = memory_rows(run)
    if rows:
        lines += [f"**Memory (chain of {run['config']['memory_n']:,} ops) and the deepest chain each engine back-propagates**", ""]
        lines += _md_table(MEMORY_HEADERS, rows, "<>>>>><")
        lines.append("")
    busy = busy_warning(run)
    if busy:
        lines += [f"> {busy}", ""]
    lines += ["**Targets**", ""]
    lines += [f"- {t['status']}: {t['target']}: {t['detail']}" for t in run["targets"]]
    skipped = [(e, v["reason"]) for e, v in run["engines"].items() if v["status"] == "skipped"]
    if skipped:
        lines += ["", "Not in this run: " + "; ".join(f"{e} ({why})" for e, why in skipped)]
    return "\n".join(lines) + "\n"


def finite(obj: Any) -> Any:
    """obj with nan and infinities as None, so the file is strict JSON."""
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def write_json(run: Dict[str, Any], path: str) -> None:
    with open(path, "w") as f:
        json.dump(finite(run), f, indent=1, allow_nan=False)
        f.write("\n")
