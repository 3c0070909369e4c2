"""Command line: ``meshsim run``, ``meshsim validate``, ``meshsim sweep``, ``meshsim grade``, ``meshsim demo``.

Bad input of any kind (missing file, not YAML, wrong types, unknown keys)
prints a short message naming the problem and exits with status 2; it never
shows a traceback.

    meshsim run data/scenarios/tandem.yaml --seed 3 --set run.requests=50000 --out out/tandem
    meshsim validate data/scenarios/fanout.yaml
    meshsim grade submitted/alice/ex01_littles_law/ex01_littles_law.ipynb --json
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's default also exits 2; keep it short
        self.print_usage(sys.stderr)
        print(f"meshsim: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="meshsim", description="Discrete-event simulation of service meshes (times in ms).")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    r = sub.add_parser("run", help="run a scenario and print its summary")
    r.add_argument("scenario", help="scenario YAML file")
    r.add_argument("--seed", type=_seed, default=None, help="random seed (default: the scenario's seed)")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                   help="override a scenario key, e.g. --set services.cart.replicas=3 (repeatable)")
    r.add_argument("--out", default=None, metavar="DIR", help="write summary.json and the requests table here")
    r.add_argument("--plot", action="store_true", help="with --out: also write latency.png")
    r.add_argument("--no-tables", dest="tables", action="store_false",
                   help="with --out: write summary.json only, not the per-request table")
    r.add_argument("--format", choices=("parquet", "csv"), default="parquet",
                   help="with --out: the requests table as requests.parquet (default) or requests.csv")
    r.add_argument("--quiet", action="store_true", help="do not print the summary table")

    v = sub.add_parser("validate", help="check a scenario and print what it offers")
    v.add_argument("scenario", help="scenario YAML file")
    v.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE")

    w = sub.add_parser("sweep", help="run a parameter sweep; finished runs are kept in DIR and skipped on rerun")
    w.add_argument("sweep", help="sweep YAML file (scenario, parameters, mode, replications, seed, metrics)")
    w.add_argument("--out", required=True, metavar="DIR", help="result store (resumable)")
    w.add_argument("--backend", choices=("serial", "processes", "dask"), default=None,
                   help="default: dask with --scheduler, else processes")
    w.add_argument("--workers", type=int, default=None, help="process-pool size (default: one per core)")
    w.add_argument("--scheduler", default=None, metavar="ADDRESS", help="dask scheduler address, e.g. tcp://10.0.0.5:8786")
    w.add_argument("--no-progress", dest="progress", action="store_false")
    w.add_argument("--new", action="store_true",
                   help="if DIR holds a different sweep, write to the first free DIR-2, DIR-3, ... instead of refusing")
    w.add_argument("--metric", action="append", default=[], metavar="NAME",
                   help="metric(s) in the printed table and the plot, e.g. --metric latency_ms.p90 or "
                        "--metric throughput_rps,latency_ms.p99 (default: latency p50, p99 and mean)")
    w.add_argument("--plot", action="store_true",
                   help="also write DIR/latency_vs_load.png (one numeric parameter) or DIR/heatmap.png (two)")

    g = sub.add_parser("grade", help="grade exercise notebooks: restore the tests from the source version, run, count points")
    g.add_argument("notebooks", nargs="+", metavar="SUBMISSION.ipynb", help="submitted notebook(s)")
    g.add_argument("--source", default=None, metavar="SOURCE.ipynb",
                   help="the instructor's version (default: source/<name>/<name>.ipynb above the submission)")
    g.add_argument("--json", action="store_true", help="print JSON (an object, or a list for several notebooks)")
    g.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS", help="time limit per cell (default 120)")
    g.add_argument("--workers", type=int, default=1, help="notebooks graded at a time (default 1)")

    d = sub.add_parser("demo", help="run the default demo scenario, print its summary and write a plot")
    d.add_argument("--out", default="out/demo", metavar="DIR", help="where to write summary.json and latency.png")
    d.add_argument("--seed", type=_seed, default=None)
    return p


def _fail(message: str) -> int:
    print(f"meshsim: {message}", file=sys.stderr)
    return EXIT_USAGE


_MAX_PROBLEMS, _MAX_LINE = 20, 400


def _shorten(line: str) -> str:
    """Keep the start (the path) and the end (any suggestion) of an over-long line."""
    return line if len(line) <= _MAX_LINE else f"{line[:300]} ... {line[-90:]}"


def _describe(error: Exception) -> str:
    """A short report of a ScenarioError: at most _MAX_PROBLEMS lines of at most _MAX_LINE characters."""
    lines = str(error).split("\n")
    if len(lines) == 1:
        return f"invalid scenario: {_shorten(lines[0])}"
    shown = [_shorten(line) for line in lines[:_MAX_PROBLEMS]]
    if len(lines) > _MAX_PROBLEMS:
        shown.append(f"... and {len(lines) - _MAX_PROBLEMS} more problems")
    return "invalid scenario:\n  " + "\n  ".join(shown)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.version:
        from . import __version__

        print(__version__)
        return EXIT_OK
    if args.command is None:
        _parser().print_help()
        return EXIT_USAGE
    program_run = argv is None and args.command == "run"  # the program itself (python -m meshsim, the script)
    if program_run and args.out and args.tables and args.format == "parquet":
        # a child imports pyarrow on the other core while the simulation runs; it writes the table after
        from . import _background
        from .result import load_parquet_writer

        _background.warm_up(load_parquet_writer)
    rc = _command(args)
    if program_run:
        _leave(rc)
    return rc


def _leave(rc: int) -> None:
    """End the program now with status ``rc``: flush the output, run the ``atexit`` functions, and skip the
    interpreter's teardown.

    That teardown frees every object of a finished run one by one, and each module, and writes nothing (the
    command has closed its files): about 40 ms after a 200,000-request run.  Only for the program itself, never
    for a caller of :func:`main` in its own process.  If the output cannot be flushed (a closed pipe), Python's
    own exit reports it as before.
    """
    import atexit
    import os

    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return
    atexit._run_exitfuncs()
    os._exit(rc)


def _command(args: argparse.Namespace) -> int:
    from .errors import ScenarioError, ScenarioWarning

    def show_warning(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        print(f"meshsim: warning: {message}", file=sys.stderr)

    warnings.showwarning = show_warning
    warnings.simplefilter("always", ScenarioWarning)
    try:
        if args.command == "validate":
            return _validate(args)
        if args.command == "sweep":
            return _sweep(args)
        if args.command == "grade":
            return _grade(args)
        if args.command == "demo":
            from .demo import run_demo

            run_demo(Path(args.out), seed=args.seed)
            return EXIT_OK
        return _run(args)
    except ScenarioError as e:
        return _fail(_describe(e))
    except KeyboardInterrupt:
        return _fail("interrupted")
    except OSError as e:
        return _fail(str(e))


def _validate(args: argparse.Namespace) -> int:
    from .scenario.load import load_scenario

    sc = load_scenario(args.scenario, args.overrides)
    print(f"{args.scenario}: ok — {len(sc.services)} services, {len(sc.instances())} instances, "
          f"{len(sc.hosts())} hosts, {len(sc.workloads)} workloads")
    for name, u in sc.utilisation().items():
        print(f"  {name:<24} offered utilisation {u:.3f}")
    return EXIT_OK


def _sweep(args: argparse.Namespace) -> int:
    import signal
    import threading

    from .errors import ScenarioError
    from .sweep import SweepMismatch, load_sweep, run_sweep
    from .sweep.report import choose_metrics, format_table, metric_names, plot_problem, write_plot

    if args.workers is not None and args.workers < 1:
        return _fail(f"--workers must be >= 1, got {args.workers}")
    chosen = [m.strip() for text in args.metric for m in text.split(",") if m.strip()]
    sw = load_sweep(args.sweep)
    if sw.metrics and chosen:
        try:
            choose_metrics(list(sw.metrics), chosen)  # an unknown --metric fails before anything runs
        except ScenarioError as e:
            return _fail(str(e))
    if args.plot and (problem := plot_problem({p: [pt[p] for pt in sw.points] for p in sw.parameters})):
        return _fail(problem)
    backend = args.backend or ("dask" if args.scheduler else "processes")

    def terminate(signum, frame):  # noqa: ANN001 - SIGTERM ends the sweep like Ctrl-C: workers stopped, runs kept
        raise KeyboardInterrupt

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, terminate) if main_thread else None
    try:
        res = run_sweep(sw, args.out, backend=backend, workers=args.workers, scheduler=args.scheduler,
                        progress=args.progress, new=args.new)
    except SweepMismatch as e:
        return _fail(f"{e}\n  nothing was run; use another --out folder, or --new to write to {args.out}-2 (or the "
                     "next free one)")
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    try:
        metrics = choose_metrics(metric_names(res.aggregate, list(sw.parameters)), chosen)
    except ScenarioError as e:  # the runs and aggregate.csv are kept
        return _fail(f"{e}\n  the runs and {Path(res.directory) / 'aggregate.csv'} are written")
    failed = int(res.runs["error"].notna().sum()) if len(res.runs) else 0
    moved = f" (a new folder: {args.out} holds a different sweep)" if str(res.directory) != str(args.out) else ""
    print(f"{len(res.runs)} runs in {res.directory}{moved}, {failed} failed"
          + (", paired seeds" if sw.paired else "") + "; mean over replications ± half 95% CI:")
    print(format_table(res.aggregate, list(sw.parameters), metrics))
    print(f"\nwrote {Path(res.directory) / 'aggregate.csv'}")
    if args.plot and len(res.aggregate):
        plot_metric = chosen[0] if chosen else ("latency_ms.p99" if "latency_ms.p99" in metrics else metrics[0])
        print(f"wrote {write_plot(res.aggregate, list(sw.parameters), plot_metric, res.directory)}")
    return 130 if res.interrupted else EXIT_OK


def _grade(args: argparse.Namespace) -> int:
    from .grading import format_table, grade_many, to_json

    if args.workers < 1 or args.timeout <= 0:
        return _fail(f"--workers must be >= 1 and --timeout > 0, got {args.workers} and {args.timeout}")
    try:
        graded = grade_many(args.notebooks, args.source, timeout_s=args.timeout, workers=args.workers)
    except ImportError as e:  # pragma: no cover - nbformat and nbclient come with the notebooks extra
        return _fail(f"meshsim grade needs nbformat and nbclient (pip install 'meshsim[notebooks]'): {e}")
    except ValueError as e:  # not a notebook (nbformat's errors are ValueErrors)
        return _fail(f"cannot read a notebook: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    print(to_json(graded[0] if len(graded) == 1 else graded) if args.json else format_table(graded))
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from .api import run
    from .scenario.load import load_scenario

    sc = load_scenario(args.scenario, args.overrides)
    result = run(sc, seed=args.seed)
    written = {}
    if args.out:  # first, so that the table can be written on the side while the summary is computed
        try:
            written = result.save(args.out, tables=args.tables, format=args.format, background=True)
        except ImportError as e:  # pragma: no cover - pyarrow is a core dependency
            return _fail(str(e))
    if not args.quiet:
        print(result.table())
    if args.out:
        if args.plot:
            from .plots import latency_figure

            fig = latency_figure(result)
            fig.savefig(Path(args.out) / "latency.png", dpi=120)
            written["plot"] = Path(args.out) / "latency.png"
        if not args.quiet:
            print("\nwrote " + ", ".join(str(p) for p in written.values()))
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
