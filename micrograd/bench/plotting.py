"""``--plot PATH``: cost against graph size on log-log axes for every engine (matplotlib, an
optional extra, imported only here)."""
from __future__ import annotations

from typing import Any, Dict

from micrograd.bench import report

MISSING = (
    "--plot needs matplotlib, which is not installed: `pip install matplotlib` "
    "(or the bench extra: `pip install 'micrograd-fast[bench]'`)"
)

COLORS = {  # fixed per engine, so that figures from different runs compare at a glance
    "python": "#1f77b4",
    "cython": "#d62728",
    "python-tape": "#9ecae1",
    "cython-tape": "#ff9896",
    "karpathy": "#2ca02c",
    "torch-scalar": "#ff7f0e",
    "torch-batched": "#ffbb78",
    "c-tape": "#7f7f7f",
    "c-dense": "#c7c7c7",
}


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def plot(run: Dict[str, Any], path: str) -> None:
    """Three panels: chain forward and chain backward (time per graph against nodes, min-max as
    error bars), and the demo step per engine."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(MISSING) from None

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8), gridspec_kw={"width_ratios": [1, 1, 0.9]})
    engines = report.engine_order(run)
    for ax, workload in zip(axes[:2], ("chain-forward", "chain-backward")):
        for engine in engines:
            rows = sorted(
                (r for r in run["results"] if r["engine"] == engine and r["workload"] == workload and "median" in r),
                key=lambda r: r["nodes"],
            )
            if not rows:
                continue
            x = [r["nodes"] for r in rows]
            y = [r["median"] for r in rows]
            err = [[r["median"] - r["min"] for r in rows], [r["max"] - r["median"] for r in rows]]
            ax.errorbar(x, y, yerr=err, marker="o", ms=4, capsize=2, elinewidth=0.8, label=engine,
                        color=COLORS.get(engine), ecolor=COLORS.get(engine), alpha=0.9)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("graph size (nodes)")
        ax.set_ylabel("seconds per graph (median, min-max)")
        ax.set_title(f"{workload} (x = x*b + a, n ops)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)

    demo = [(e, report.find(run, e, "demo-step")) for e in engines]
    demo = [(e, r) for e, r in demo if r is not None]
    ax = axes[2]
    if demo:
        names = [e for e, _ in demo]
        ax.barh(names, [r["median"] for _, r in demo], color=[COLORS.get(e) for e in names])
        for i, (_, r) in enumerate(demo):
            ax.text(r["median"], i, " " + report.fmt_time(r["median"]), va="center", fontsize=8)
        ax.set_xscale("log")
        lo, hi = min(r["median"] for _, r in demo), max(r["median"] for _, r in demo)
        ax.set_xlim(lo / 3, hi * 12)  # room for the labels right of the bars
        ax.invert_yaxis()
        ax.set_xlabel("seconds per step (median)")
    ax.set_title("demo step (100 points, MLP(2, [16, 16, 1]))")
    ax.set_axisbelow(True)
    ax.grid(True, axis="x", which="major", alpha=0.3)

    m = run["machine"]
    fig.suptitle(f"micrograd bench: {m['cpu']}, Python {m['python']}, {run['created_utc'][:10]}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
