"""``python -m micrograd bench``: the command line."""
from __future__ import annotations

import argparse
import datetime
import os
import shlex
import subprocess
import sys
from typing import Any, Dict, List, Optional

from micrograd._cli import TORCH_HINT, program_name
from micrograd.bench import c_floor, machine, report, runner
from micrograd.progress import Progress

DESCRIPTION = """\
Benchmark micrograd's engines against each other and against peers: Karpathy's original
micrograd 0.1.0, PyTorch (0-d tensors, and batched as one would write it), and hand-written C
loops. Two suites: "core" times the engines on graphs (chains, a wide neuron, the demo step);
"toy" times one whole training step of small networks (two-moons MLPs of width 16, 64, 256;
digits with cross-entropy, a minibatch and the full batch; a microgpt-style GPT with Adam) on
this package's engines, eager and replayed, against PyTorch. Each engine runs in its own
subprocess; each workload is checked against the pure engine's numbers before it is timed.
Peers that are not installed are skipped, with how to install them."""

EPILOG = """\
examples:
  python -m micrograd bench --quick
  python -m micrograd bench --suite toy --json toy.json --markdown toy.md
  python -m micrograd bench --install-peers --json bench.json --plot bench.png
  python -m micrograd bench --engines python,cython --workloads demo-step,chain-backward

The exit code is 0 unless one of this package's engines failed its correctness gate or crashed
(1), or the arguments were wrong (2). Missed targets and missing peers never change it."""


def parse_list(kind: str, allowed: List[str]):
    def parse(text: str) -> List[str]:
        names = [t.strip() for t in text.split(",") if t.strip()]
        unknown = [n for n in names if n not in allowed]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"unknown {kind} {', '.join(unknown) or '(none)'}; choose from {', '.join(allowed)}")
        return [n for n in allowed if n in names]  # report order

    return parse


def parse_sizes(text: str) -> List[int]:
    try:
        sizes = sorted({int(float(t)) for t in text.split(",") if t.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes takes integers separated by commas, not {text!r}") from None
    if not sizes or sizes[0] < 2:
        raise argparse.ArgumentTypeError("--sizes must be at least 2")
    return sizes


def positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, not {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=program_name("bench"), description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="smaller graphs and shorter timings, the toy suite's smallest workloads only: about a minute")
    p.add_argument("--suite", choices=("all", *runner.SUITES), default="all",
                   help="core: the engines on graphs; toy: training steps against PyTorch (default: all)")
    p.add_argument("--json", metavar="PATH", help="write every figure, the method and the machine metadata as JSON")
    p.add_argument("--plot", metavar="PATH", help="draw cost against graph size, log-log, every engine (needs matplotlib)")
    p.add_argument("--markdown", metavar="PATH", help="write the results as a Markdown section (for the README)")
    p.add_argument("--plot-link", metavar="URL", help="the image path the Markdown section links to (default: --plot's PATH)")
    p.add_argument("--engines", type=parse_list("engine", list(runner.ENGINES)), help="comma-separated subset of: " + ", ".join(runner.ENGINES))
    p.add_argument("--workloads", type=parse_list("workload", list(runner.ALL_WORKLOADS)), help="comma-separated subset of: " + ", ".join(runner.ALL_WORKLOADS))
    p.add_argument("--sizes", type=parse_sizes, help="chain lengths n (default 100,1000,10000,100000; --quick up to 10000)")
    p.add_argument("--budget", type=positive, metavar="SECONDS", help="time spent per measurement (default 0.5, --quick 0.05)")
    p.add_argument("--no-probes", action="store_true", help="skip bytes per node and the largest-depth probe")
    p.add_argument("--timeout", type=positive, metavar="SECONDS", help="limit per engine subprocess (default 900, --quick 120)")
    p.add_argument("--karpathy-path", metavar="DIR", help=f"where `pip install --target DIR {runner.KARPATHY_PIN}` put Karpathy's micrograd (or set {runner.KARPATHY_ENV})")
    p.add_argument("--install-peers", action="store_true", help=f"pip install Karpathy's micrograd 0.1.0 into {runner.karpathy_default_dir()} if it is not found")
    p.add_argument("--list", action="store_true", help="list the engines, whether each can run here, and the workloads; then exit")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    return p


def suite_workloads(args: argparse.Namespace) -> Optional[List[str]]:
    """The workloads --suite and --workloads ask for (None: the default, all or --quick's)."""
    if args.suite == "all":
        return args.workloads
    allowed = runner.QUICK_WORKLOADS if args.quick and not args.workloads else runner.ALL_WORKLOADS
    chosen = [w for w in args.workloads or allowed if w in runner.SUITES[args.suite] and w in allowed]
    if not chosen:
        build_parser().error(f"--workloads {','.join(args.workloads)} has none of the {args.suite} suite's "
                             f"({', '.join(runner.SUITES[args.suite])})")
    return chosen


def make_config(args: argparse.Namespace) -> runner.Config:
    overrides: Dict[str, Any] = {}
    if args.engines:
        overrides["engines"] = args.engines
    chosen = suite_workloads(args)
    if chosen:
        overrides["workloads"] = chosen
    if args.sizes:
        overrides["sizes"] = args.sizes
    if args.timeout:
        overrides["timeout_s"] = args.timeout
    overrides["probes"] = not args.no_probes
    overrides["karpathy_path"] = args.karpathy_path
    config = runner.Config.quick_config(**overrides) if args.quick else runner.Config(**overrides)
    if not args.engines:  # by default, the engines that run any of these workloads
        config.engines = [e for e in config.engines if runner.workloads_of(e, config)]
    if args.budget:
        config.budget = dict(config.budget, seconds=args.budget)
    return config


def list_engines(config: runner.Config) -> int:
    print("engines (in report order):")
    for name, about in runner.ENGINES.items():
        reason = runner.availability(name, config)
        print(f"  {name:<14} {'available' if reason is None else 'not available'}: {about}")
        if reason:
            print(f"  {'':<14} {reason}")
    for suite, names in runner.SUITES.items():
        print(f"workloads, {suite} suite:")
        for name in names:
            print(f"  {name:<14} {runner.WORKLOAD_ABOUT[name]}")
    return 0


def install_peers(config: runner.Config) -> None:
    """Karpathy's micrograd into the cache, if it is not found; torch is never installed here."""
    path, _ = runner.find_karpathy(config.karpathy_path)
    if path is None and "karpathy" in config.engines:
        print(f"installing {runner.KARPATHY_PIN} into {runner.karpathy_default_dir()} ...", file=sys.stderr)
        try:
            config.karpathy_path = runner.install_karpathy()
        except (OSError, subprocess.CalledProcessError) as exc:
            print(f"could not install Karpathy's micrograd ({exc}); it will be skipped", file=sys.stderr)
    if any(e.startswith("torch") for e in config.engines) and not runner.torch_available():
        print(f"PyTorch is not installed and --install-peers does not install it (large): {TORCH_HINT}", file=sys.stderr)


def command_line(argv: List[str]) -> str:
    return "python -m micrograd bench" + "".join(" " + shlex.quote(a) for a in argv)


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    config = make_config(args)
    if args.list:
        return list_engines(config)
    if args.plot:
        from micrograd.bench import plotting

        if not plotting.available():  # say so now, not after a run of minutes
            print(plotting.MISSING, file=sys.stderr)
            return 2
    if args.install_peers:
        install_peers(config)

    cc = c_floor.find_compiler()
    meta = machine.collect(cc, c_floor.compiler_version(cc) if cc else None)
    bench = runner.Bench(config, Progress(enabled=not args.no_progress))
    data = bench.run()
    run = {
        "schema": report.SCHEMA,
        "command": command_line(argv),
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": meta,
        "load_average_at_end": machine.load_average(),
        "config": runner.config_dict(config),
        "methods": report.METHODS,
        "workloads": runner.WORKLOAD_ABOUT,
        "c_flags": c_floor.CFLAGS,
        **data,
    }
    report.add_ratios(run)
    run["targets"] = report.targets(run)
    run["toy"] = report.toy_summary(run)
    sys.stdout.write(report.text(run))
    if args.json:
        report.write_json(run, args.json)
        print(f"wrote {args.json}")
    if args.plot:
        from micrograd.bench import plotting

        plotting.plot(run, args.plot)
        print(f"wrote {args.plot}")
    if args.markdown:
        link = args.plot_link or (os.path.relpath(args.plot) if args.plot else None)
        with open(args.markdown, "w") as f:
            f.write(report.markdown(run, link))
        print(f"wrote {args.markdown}")
    ours_failed = [
        e for e, v in run["engines"].items()
        if e in runner.OURS and v["status"] in ("partial", "failed", "error")
    ]
    if ours_failed:
        print(f"this package's engines failed: {', '.join(ours_failed)}", file=sys.stderr)
        return 1
    return 0
