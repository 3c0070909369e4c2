"""Benchmark harness: meshsim vs a hand-written SimPy model vs Ciw.

Reference workload: three M/M/10 stations in tandem, lambda = 8/s, mean
service 1000 ms per worker, async semantics, no network latency, 200,000
requests.  Each tool runs as its own child process; the harness measures the
wall-clock time of the whole process (interpreter and CLI start-up included)
and the child's peak RSS (``ru_maxrss`` from ``os.wait4`` on that child).

    .venv/bin/python bench/run.py                      # full run -> bench/out/latest.md
    .venv/bin/python bench/run.py --markdown bench/results.md --repeat 3
    .venv/bin/python bench/run.py --quick              # 20,000 requests, no memory section

See bench/README.md for what is measured and how to read the output.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.metadata
import json
import math
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
DEFAULT_SCENARIO = "data/scenarios/tandem.yaml"
DEFAULT_MARKDOWN = BENCH_DIR / "out" / "latest.md"

# Workload constants (must match data/scenarios/tandem.yaml and the baselines).
STATIONS, WORKERS, LAMBDA_PER_S, MU_PER_S = 3, 10, 8.0, 1.0

# Targets from the issue.
TARGET_VS_SIMPY = 1.5
#: issue 14: the CLI with --out (the requests table as parquet) at least 2.5x the SimPy model
TARGET_VS_SIMPY_WITH_OUT = 2.5
TARGET_VS_CIW = 4.0
TARGET_FULL_1M_MB = 250.0
FLAT_TOLERANCE = 0.10  # streaming: peak RSS at 1M may exceed the 250k figure by at most 10 %

MEMORY_FULL_REQUESTS = 1_000_000
MEMORY_STREAMING_REQUESTS = (250_000, 500_000, 1_000_000)
WARMUP_REQUESTS = 500


# --------------------------------------------------------------------------- theory


def erlang_c(c: int, a: float) -> float:
    """Probability of waiting in an M/M/c queue with offered load ``a`` (Erlangs)."""
    head = sum(a**k / math.factorial(k) for k in range(c))
    tail = a**c / math.factorial(c) * c / (c - a)
    return tail / (head + tail)


def theory_sojourn_ms() -> float:
    a = LAMBDA_PER_S / MU_PER_S
    per_station_s = erlang_c(WORKERS, a) / (WORKERS * MU_PER_S - LAMBDA_PER_S) + 1.0 / MU_PER_S
    return STATIONS * per_station_s * 1000.0


THEORY_MS = theory_sojourn_ms()  # 3613.77 ms


def sanity_tolerance(requests: int) -> float:
    """Relative band around theory that a correct simulator should land in.

    Seed-to-seed spread of the mean sojourn at 200k requests is about +-1 %
    (strongly autocorrelated at rho = 0.8); the band is 3 % at 200k and widens
    as 1/sqrt(N) for shorter runs.
    """
    return 0.03 * math.sqrt(max(1.0, 200_000 / max(requests, 1)))


# --------------------------------------------------------------------------- child processes

# Children run as a user's would: with bytecode caching on (some environments export
# PYTHONDONTWRITEBYTECODE=1, which would make every run recompile meshsim from source).
# The caches go under bench/out/ (ignored by git), so the harness writes nothing elsewhere;
# the untimed warm-up run fills them.
PYCACHE_DIR = BENCH_DIR / "out" / "pycache"
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
CHILD_ENV["PYTHONPYCACHEPREFIX"] = str(PYCACHE_DIR)


@dataclass
class ChildRun:
    cmd: list[str]
    ok: bool
    returncode: int | None
    wall_s: float
    maxrss_kib: int
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def peak_mb(self) -> float:
        return self.maxrss_kib / 1024.0  # ru_maxrss is KiB on Linux

    def failure(self) -> str:
        if self.timed_out:
            return f"timed out after {self.wall_s:.0f} s"
        tail = (self.stderr.strip() or self.stdout.strip()).splitlines()[-6:]
        return f"exit code {self.returncode}: " + (" | ".join(tail) if tail else "(no output)")


def run_child(cmd: list[str], timeout: float) -> ChildRun:
    """Run ``cmd`` from the repo root; wall time of the whole process and its own peak RSS."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=CHILD_ENV)
        timed_out = threading.Event()

        def _kill() -> None:
            timed_out.set()
            proc.kill()

        timer = threading.Timer(timeout, _kill)
        timer.start()
        try:
            while True:
                try:
                    _, status, usage = os.wait4(proc.pid, 0)
                    break
                except InterruptedError:
                    continue
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        rc = os.waitstatus_to_exitcode(status)
        proc.returncode = rc  # reaped by wait4; stop Popen from waiting again
        out.seek(0)
        err.seek(0)
        return ChildRun(
            cmd=cmd,
            ok=(rc == 0 and not timed_out.is_set()),
            returncode=rc,
            wall_s=wall,
            maxrss_kib=usage.ru_maxrss,
            stdout=out.read(),
            stderr=err.read(),
            timed_out=timed_out.is_set(),
        )


def json_lines(text: str) -> list[dict]:
    objs = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                objs.append(obj)
    return objs


# --------------------------------------------------------------------------- reading meshsim's results

SOJOURN_KEYS = ("mean_sojourn_ms", "sojourn_mean_ms", "mean_latency_ms", "latency_mean_ms", "mean_response_time_ms")
COMPLETED_KEYS = ("completed", "requests_completed", "completed_requests", "n_completed")


def _flatten(obj: object, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            flat.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    else:
        flat[prefix] = obj
    return flat


def _is_num(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def find_summary_values(objs: list[dict]) -> tuple[float | None, int | None, str | None]:
    """(mean sojourn ms, completed, where) from the first object that has an end-to-end mean sojourn.

    Shallowest match wins, so a top-level figure beats per-service ones.  Accepted, in order:
    a leaf key in SOJOURN_KEYS; a leaf ``mean``/``mean_ms`` under a path mentioning ``sojourn``;
    a top-level ``latency_ms.mean`` (meshsim's summary.json).
    """

    def depth(path: str) -> int:
        return path.count(".")

    for obj in objs:
        flat = sorted(((p, v) for p, v in _flatten(obj).items() if _is_num(v)), key=lambda pv: depth(pv[0]))
        leaf = {p: p.rsplit(".", 1)[-1].lower() for p, _ in flat}
        rules = (
            lambda p: leaf[p] in SOJOURN_KEYS,
            lambda p: "sojourn" in p.lower() and leaf[p] in ("mean", "mean_ms"),
            lambda p: p.lower() in ("latency_ms.mean", "latency.mean_ms"),
        )
        hit = next(((p, v) for rule in rules for p, v in flat if rule(p)), None)
        if hit is None:
            continue
        completed = next((int(v) for p, v in flat if leaf[p] in COMPLETED_KEYS), None)
        return float(hit[1]), completed, hit[0]
    return None, None, None


def meshsim_summary(run: ChildRun, out_dir: Path) -> tuple[float | None, int | None, str | None]:
    """Look for the mean sojourn on meshsim's stdout (JSON lines), then in JSON files under --out."""
    found = find_summary_values(json_lines(run.stdout))
    if found[0] is not None:
        return found[0], found[1], "stdout:" + str(found[2])
    if out_dir.is_dir():
        files = sorted(out_dir.rglob("*.json"), key=lambda p: (0 if "summary" in p.name.lower() else 1, str(p)))
        for f in files:
            if f.stat().st_size > 20_000_000:
                continue
            try:
                obj = json.loads(f.read_text())
            except (ValueError, OSError):
                continue
            if isinstance(obj, dict):
                found = find_summary_values([obj])
                if found[0] is not None:
                    return found[0], found[1], f"{f.relative_to(out_dir)}:{found[2]}"
    return None, None, None


# --------------------------------------------------------------------------- tools


@dataclass
class Measurement:
    tool: str
    requests: int
    label: str = ""
    runs: list[ChildRun] = field(default_factory=list)
    available: bool = True
    reason: str = ""
    completed: int | None = None
    mean_sojourn_ms: float | None = None
    sojourn_source: str | None = None
    pick: str = "median"

    def __post_init__(self) -> None:
        self.label = self.label or self.tool

    @property
    def ok_runs(self) -> list[ChildRun]:
        return [r for r in self.runs if r.ok]

    @property
    def wall_s(self) -> float | None:
        walls = [r.wall_s for r in self.ok_runs]
        if not walls:
            return None
        return min(walls) if self.pick == "best" else statistics.median(walls)

    @property
    def peak_mb(self) -> float | None:
        rss = [r.peak_mb for r in self.ok_runs]
        return max(rss) if rss else None

    @property
    def req_per_s(self) -> float | None:
        w = self.wall_s
        return self.requests / w if w else None


class Tool:
    name = ""

    def __init__(self, seed: int, timeout: float, keep_out: bool):
        self.seed, self.timeout, self.keep_out = seed, timeout, keep_out

    def command(self, requests: int, extra: list[str], out_dir: Path) -> list[str]:
        raise NotImplementedError

    def parse(self, run: ChildRun, out_dir: Path) -> tuple[float | None, int | None, str | None]:
        objs = json_lines(run.stdout)
        if not objs:
            return None, None, None
        last = objs[-1]
        return last.get("mean_sojourn_ms"), last.get("completed"), "stdout"

    def execute(self, requests: int, extra: list[str] | None = None) -> tuple[ChildRun, tuple]:
        tmp = Path(tempfile.mkdtemp(prefix=f"bench-{self.name}-"))
        out_dir = tmp / "out"
        try:
            run = run_child(self.command(requests, extra or [], out_dir), self.timeout)
            parsed = self.parse(run, out_dir) if run.ok else (None, None, None)
        finally:
            if self.keep_out:
                print(f"    output kept in {out_dir}", file=sys.stderr)
            else:
                shutil.rmtree(tmp, ignore_errors=True)
        return run, parsed


class MeshsimTool(Tool):
    name = "meshsim"

    def __init__(self, *a, scenario: str, tables: bool = False, **kw):
        super().__init__(*a, **kw)
        self.scenario = scenario
        self.tables = tables  # also write the requests table (requests.parquet), as `meshsim run --out` does

    def command(self, requests, extra, out_dir):
        cmd = [sys.executable, "-m", "meshsim", "run", self.scenario, "--seed", str(self.seed), "--out", str(out_dir)]
        if not self.tables:
            cmd.append("--no-tables")
        cmd += ["--set", f"run.requests={requests}"]
        for s in extra:
            cmd += ["--set", s]
        return cmd

    def parse(self, run, out_dir):
        return meshsim_summary(run, out_dir)


class ScriptTool(Tool):
    def __init__(self, name: str, script: str, *a, **kw):
        super().__init__(*a, **kw)
        self.name, self.script = name, script

    def command(self, requests, extra, out_dir):
        return [sys.executable, str(BENCH_DIR / self.script), "--requests", str(requests), "--seed", str(self.seed)]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def warm_up(tool: Tool) -> tuple[bool, str]:
    """Tiny untimed run: fills the bytecode and page caches and checks the tool works at all."""
    log(f"  warm-up {tool.name} ({WARMUP_REQUESTS} requests)")
    run, _ = tool.execute(WARMUP_REQUESTS)
    return (True, "") if run.ok else (False, run.failure())


def record(m: Measurement, run: ChildRun, parsed: tuple) -> None:
    m.runs.append(run)
    if not run.ok:
        log(f"    FAILED: {run.failure()}")
        return
    sojourn, completed, source = parsed
    if m.mean_sojourn_ms is None and sojourn is not None:
        m.mean_sojourn_ms, m.completed, m.sojourn_source = float(sojourn), completed, source
    log(
        f"    {run.wall_s:8.2f} s  {run.peak_mb:7.1f} MB  "
        f"sojourn {('%.1f ms' % sojourn) if sojourn is not None else 'n/a'}"
    )


# --------------------------------------------------------------------------- formatting


def fmt(v: float | None, spec: str, none: str = "n/a") -> str:
    return none if v is None else format(v, spec)


def sojourn_cell(m: Measurement) -> str:
    if m.mean_sojourn_ms is None:
        return "n/a"
    rel = m.mean_sojourn_ms / THEORY_MS - 1.0
    flag = "" if abs(rel) <= sanity_tolerance(m.requests) else " **off**"
    return f"{m.mean_sojourn_ms:.1f} ({rel:+.1%}){flag}"


def completed_cell(m: Measurement) -> str:
    return "n/a" if m.completed is None else f"{m.completed:,}"


def md_table(headers: list[str], rows: list[list[str]]) -> str:
    right = [i > 0 for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" if r else "---" for r in right) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def throughput_table(ms: list[Measurement], mesh: Measurement | None) -> str:
    rows = []
    for m in ms:
        if not m.available or m.wall_s is None:
            rows.append([m.tool, f"{m.requests:,}", "unavailable", "", "", "", "", ""])
            continue
        if mesh is None or mesh.wall_s is None:
            ratio = "n/a"
        elif m is mesh:
            ratio = "1.00x"
        else:
            ratio = f"{m.wall_s / mesh.wall_s:.2f}x"
        rows.append(
            [m.tool, f"{m.requests:,}", f"{m.wall_s:.2f}", f"{m.req_per_s:,.0f}", ratio, f"{m.peak_mb:.1f}",
             completed_cell(m), sojourn_cell(m)]
        )
    return md_table(
        ["tool", "requests", "wall s", "req / wall s", "meshsim speed-up vs tool", "peak RSS MB", "measured", "mean sojourn ms (vs theory)"],
        rows,
    )


def memory_table(ms: list[Measurement]) -> str:
    rows = []
    for m in ms:
        if not m.available or m.wall_s is None:
            rows.append([m.label, f"{m.requests:,}", "unavailable", "", "", "", ""])
        else:
            rows.append([m.label, f"{m.requests:,}", f"{m.wall_s:.2f}", f"{m.req_per_s:,.0f}", f"{m.peak_mb:.1f}",
                         completed_cell(m), sojourn_cell(m)])
    return md_table(["meshsim mode", "requests", "wall s", "req / wall s", "peak RSS MB", "measured", "mean sojourn ms (vs theory)"], rows)


def target_lines(mesh, simpy_m, ciw_m, full_1m, streaming, tables: bool = False) -> list[tuple[str, bool | None, str]]:
    """(name, met?, text); met is None when the target could not be measured."""
    out: list[tuple[str, bool | None, str]] = []

    def speed(name: str, other: Measurement | None, target: float) -> None:
        title = f"meshsim >= {target:g}x {name} throughput"
        if other is None:
            out.append((title, None, "not measured (skipped)"))
            return
        if mesh is None or mesh.wall_s is None:
            out.append((title, None, f"not measured: meshsim unavailable ({mesh.reason if mesh else ''})"))
            return
        if other.wall_s is None:
            out.append((title, None, f"not measured: {name} unavailable ({other.reason})"))
            return
        r = other.wall_s / mesh.wall_s
        if r >= target:
            out.append((title, True, f"met: {r:.2f}x (margin {r - target:.2f}x, {r / target - 1:.0%} above target)"))
        else:
            need_wall = other.wall_s / target
            out.append(
                (
                    title,
                    False,
                    f"missed by {target - r:.2f}x: {r:.2f}x; meshsim needs wall <= {need_wall:.2f} s "
                    f"(now {mesh.wall_s:.2f} s, {mesh.wall_s / need_wall - 1:.0%} too slow)",
                )
            )

    speed("SimPy model", simpy_m, TARGET_VS_SIMPY)
    if tables:
        speed("SimPy model (meshsim with --out: requests.parquet written)", simpy_m, TARGET_VS_SIMPY_WITH_OUT)
    speed("Ciw", ciw_m, TARGET_VS_CIW)

    title = f"meshsim full records, {MEMORY_FULL_REQUESTS:,} requests: peak RSS < {TARGET_FULL_1M_MB:g} MB"
    if full_1m is None:
        out.append((title, None, "not measured (memory section skipped)"))
    elif full_1m.peak_mb is None:
        out.append((title, None, f"not measured: {full_1m.reason or 'run failed'}"))
    elif full_1m.peak_mb < TARGET_FULL_1M_MB:
        out.append((title, True, f"met: {full_1m.peak_mb:.1f} MB ({TARGET_FULL_1M_MB - full_1m.peak_mb:.1f} MB headroom)"))
    else:
        out.append((title, False, f"missed by {full_1m.peak_mb - TARGET_FULL_1M_MB:.1f} MB: {full_1m.peak_mb:.1f} MB"))

    title = f"meshsim streaming: peak RSS flat from {MEMORY_STREAMING_REQUESTS[0]:,} to {MEMORY_STREAMING_REQUESTS[-1]:,} requests (growth <= {FLAT_TOLERANCE:.0%})"
    if not streaming:
        out.append((title, None, "not measured (memory section skipped)"))
    elif any(m.peak_mb is None for m in streaming):
        bad = next(m for m in streaming if m.peak_mb is None)
        out.append((title, None, f"not measured: {bad.reason or 'run failed'}"))
    else:
        lo, hi = streaming[0].peak_mb, streaming[-1].peak_mb
        growth = hi / lo - 1.0
        text = f"{lo:.1f} MB -> {hi:.1f} MB ({growth:+.1%})"
        if growth <= FLAT_TOLERANCE:
            out.append((title, True, f"met: {text}"))
        else:
            out.append((title, False, f"missed by {growth - FLAT_TOLERANCE:.1%} points: {text}"))
    return out


# --------------------------------------------------------------------------- machine


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def machine_info() -> dict[str, str]:
    info: dict[str, str] = {"platform": platform.platform()}
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info["CPU"] = cpu
    info["cores"] = f"{os.cpu_count()} logical" + (
        f" ({len(os.sched_getaffinity(0))} usable)" if hasattr(os, "sched_getaffinity") else ""
    )
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["RAM"] = f"{int(line.split()[1]) / 1024**2:.1f} GiB"
                break
    except OSError:
        info["RAM"] = "unknown"
    info["python"] = f"{platform.python_version()} ({platform.python_implementation()}, {sys.executable})"
    for pkg in ("meshsim", "simpy", "numpy", "ciw"):
        try:
            info[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            info[pkg] = "not installed"
    if info["meshsim"] == "not installed":  # the harness runs it from the source tree
        try:
            with open(REPO / "pyproject.toml", "rb") as fh:
                info["meshsim"] = tomllib.load(fh)["project"]["version"] + " (source tree)"
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            pass
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, check=True)
        info["git"] = rev.stdout.strip() + (" (uncommitted changes)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        info["git"] = "unknown"
    return info


# --------------------------------------------------------------------------- main


def measure(tool: Tool, requests: int, repeat: int, pick: str, label: str = "", extra: list[str] | None = None,
            available: tuple[bool, str] = (True, "")) -> Measurement:
    m = Measurement(tool=tool.name, requests=requests, label=label or tool.name, pick=pick)
    if not available[0]:
        m.available, m.reason = False, available[1]
        return m
    for i in range(repeat):
        log(f"  {m.label}: {requests:,} requests (run {i + 1}/{repeat})")
        run, parsed = tool.execute(requests, extra)
        record(m, run, parsed)
    if not m.ok_runs:
        m.available, m.reason = False, m.runs[-1].failure()
    return m


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="meshsim vs SimPy vs Ciw on the reference tandem workload")
    ap.add_argument("--requests", type=int, default=None, help="requests for the throughput table (default 200,000; 20,000 with --quick)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per tool; the table shows the --pick of them (default 1)")
    ap.add_argument("--pick", choices=("median", "best"), default="median", help="statistic over --repeat runs (default median)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip-ciw", action="store_true", help="leave Ciw out (it is the slowest and largest)")
    ap.add_argument("--skip-memory", action="store_true", help="leave out the meshsim memory section")
    ap.add_argument("--quick", action="store_true", help="smoke run: 20,000 requests, no memory section")
    ap.add_argument("--scenario", default=DEFAULT_SCENARIO, help=f"meshsim scenario (default {DEFAULT_SCENARIO})")
    ap.add_argument("--markdown", type=Path, default=DEFAULT_MARKDOWN, help="Markdown report path (default bench/out/latest.md)")
    ap.add_argument("--json", type=Path, default=None, help="also write the raw numbers as JSON here")
    ap.add_argument("--timeout", type=float, default=3600.0, help="per-process timeout in seconds")
    ap.add_argument("--keep-out", action="store_true", help="keep meshsim's --out directories (printed on stderr)")
    ap.add_argument("--tables", action="store_true",
                    help="meshsim also writes its requests table (DIR/requests.parquet), as `meshsim run --out DIR` "
                         "does by default; without it the harness passes --no-tables (summary.json only)")
    ap.add_argument("--strict", action="store_true", help="exit 1 if a target is missed or could not be measured")
    args = ap.parse_args(argv)

    requests = args.requests or (20_000 if args.quick else 200_000)
    memory = not (args.quick or args.skip_memory)
    if args.repeat < 1 or requests < 1:
        ap.error("--repeat and --requests must be positive")

    started = _dt.datetime.now(_dt.timezone.utc)
    load_start = load_average()
    common = dict(timeout=args.timeout, keep_out=args.keep_out)
    mesh_tool = MeshsimTool(args.seed, scenario=args.scenario, tables=args.tables, **common)
    tools: list[Tool] = [mesh_tool, ScriptTool("simpy", "tandem_simpy.py", args.seed, **common)]
    if not args.skip_ciw:
        tools.append(ScriptTool("ciw", "tandem_ciw.py", args.seed, **common))

    log(f"theory: mean sojourn {THEORY_MS:.1f} ms")
    log("warm-up")
    avail = {t.name: warm_up(t) for t in tools}
    for name, (ok, why) in avail.items():
        if not ok:
            log(f"  {name} unavailable: {why}")

    # Throughput: interleave the tools within each repetition so drift hits all of them alike.
    log(f"throughput: {requests:,} requests, repeat {args.repeat}")
    results = {t.name: Measurement(tool=t.name, requests=requests, pick=args.pick) for t in tools}
    for i in range(args.repeat):
        for t in tools:
            m = results[t.name]
            if not avail[t.name][0]:
                m.available, m.reason = False, avail[t.name][1]
                continue
            log(f"  {t.name}: run {i + 1}/{args.repeat}")
            run, parsed = t.execute(requests)
            record(m, run, parsed)
    for m in results.values():
        if m.available and not m.ok_runs:
            m.available, m.reason = False, m.runs[-1].failure()

    mesh = results["meshsim"]
    simpy_m = results["simpy"]
    ciw_m = results.get("ciw")

    full_1m: Measurement | None = None
    streaming: list[Measurement] = []
    if memory:
        log("memory")
        # the records held in memory, as the memory targets were defined: summary.json only (--no-tables), so
        # the figures do not move with whether throughput was timed with the table written
        mem_tool = MeshsimTool(args.seed, scenario=args.scenario, tables=False, **common) if args.tables else mesh_tool
        full_1m = measure(mem_tool, MEMORY_FULL_REQUESTS, 1, args.pick, label="full records", available=avail["meshsim"])
        for n in MEMORY_STREAMING_REQUESTS:
            streaming.append(
                measure(mem_tool, n, 1, args.pick, label="streaming", extra=["metrics.mode=streaming"], available=avail["meshsim"])
            )

    targets = target_lines(mesh, simpy_m, ciw_m, full_1m, streaming, tables=args.tables)
    finished = _dt.datetime.now(_dt.timezone.utc)
    info = machine_info()
    info["load average (1/5/15 min)"] = f"{load_start} at start, {load_average()} at end (other load skews wall times)"

    # ---- Markdown
    cmdline = " ".join(shlex.quote(a) for a in [Path(sys.executable).name, "bench/run.py", *(argv if argv is not None else sys.argv[1:])])
    md: list[str] = ["# meshsim benchmark", ""]
    md.append(f"- Date (UTC): {started:%Y-%m-%d %H:%M:%S} (took {(finished - started).total_seconds():.0f} s)")
    md.append(f"- Command: `{cmdline}`")
    md.append(f"- Seed: {args.seed}; runs per tool: {args.repeat} ({args.pick} wall time; peak RSS is the max over runs)")
    md.append("")
    md.append("## Machine")
    md.append("")
    md += [f"- {k}: {v}" for k, v in info.items()]
    md.append("")
    md.append(f"## Throughput: reference tandem workload, {requests:,} requests")
    md.append("")
    md.append(
        f"Three M/M/10 stations in tandem, lambda = 8/s, mean service 1000 ms per worker, async, no network "
        f"latency. Theory: mean sojourn {THEORY_MS:.1f} ms. Wall time is the whole child process "
        f"(interpreter and CLI start-up included); peak RSS is that child's `ru_maxrss`. "
        f"\"meshsim speed-up vs tool\" = tool wall s / meshsim wall s. \"measured\" = completed requests the "
        f"mean sojourn is taken over (meshsim leaves out the scenario's warm-up; the baselines use all). "
        f"Sojourn values outside +-{sanity_tolerance(requests):.1%} of theory are marked **off**."
    )
    md.append("")
    md.append(throughput_table(list(results.values()), mesh))
    md.append("")
    if memory:
        md.append("## Memory: meshsim")
        md.append("")
        md.append(
            f"`--set run.requests=N` with full records (the default: one row per request and one span row per call, 3 calls per request here), and with `--set metrics.mode=streaming`; `--out` with `--no-tables` (the records in memory, not the table written)."
        )
        md.append("")
        md.append(memory_table([full_1m, *streaming]))
        md.append("")
    md.append("## Targets")
    md.append("")
    for title, met, text in targets:
        mark = {True: "MET", False: "MISSED", None: "NOT MEASURED"}[met]
        md.append(f"- **{mark}** — {title}: {text}")
    md.append("")
    problems = [m for m in [*results.values(), *([full_1m] if full_1m else []), *streaming] if not m.available]
    if problems:
        md.append("## Unavailable")
        md.append("")
        by_reason: dict[str, list[str]] = {}
        for m in problems:
            by_reason.setdefault(m.reason, []).append(f"{m.label} {m.requests:,}")
        for reason, which in by_reason.items():
            md.append(f"- {', '.join(which)}: {reason}")
        md.append("")
    if mesh.sojourn_source:
        md.append(f"meshsim mean sojourn read from `{mesh.sojourn_source}`.")
        md.append("")
    text = "\n".join(md)

    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(text)
    print(text)
    log(f"wrote {args.markdown}")

    if args.json:
        def dump(m: Measurement | None):
            if m is None:
                return None
            return {
                "tool": m.tool, "label": m.label, "requests": m.requests, "available": m.available, "reason": m.reason,
                "wall_s": m.wall_s, "walls_s": [r.wall_s for r in m.ok_runs], "req_per_s": m.req_per_s,
                "peak_mb": m.peak_mb, "completed": m.completed, "mean_sojourn_ms": m.mean_sojourn_ms,
            }
        payload = {
            "date_utc": started.isoformat(), "machine": info, "theory_ms": THEORY_MS, "seed": args.seed,
            "throughput": [dump(m) for m in results.values()],
            "memory": {"full": dump(full_1m), "streaming": [dump(m) for m in streaming]},
            "targets": [{"target": t, "met": met, "text": x} for t, met, x in targets],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2))

    if args.strict and any(met is not True for _, met, _ in targets):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
