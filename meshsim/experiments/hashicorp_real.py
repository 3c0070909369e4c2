"""Leader failover of a real three-server hashicorp/raft cluster on loopback.

Consul replicates its catalog with hashicorp/raft, whose timers differ from
etcd's (see ``docs/hashicorp_failover.md``).  This experiment measures the
library itself: a small Go program (``hashicorp_raft/main.go`` beside this
module) runs one hashicorp/raft server per process with the library's TCP
transport on 127.0.0.1 and in-memory stores, and prints every state change
as a JSON line stamped with the wall clock inside the raft goroutine.  The
runner builds that program once with Debian's Go and Debian's copy of the
library (``GOPATH=/usr/share/gocode GO111MODULE=off go build``: no module
downloads), then per trial

1. starts three servers on free loopback ports (``BootstrapCluster`` with the
   same three voters on each);
2. waits until one is leader and both others name it, for ``hold`` seconds;
3. sleeps uniform in [0, HeartbeatTimeout) so the kill falls at a random
   point of the timers;
4. SIGKILLs the leader and waits until a survivor reports becoming leader;
5. SIGKILLs every process group and removes the temporary directory.

Every trial is a fresh cluster (in-memory stores cannot be restarted).

Measurement
-----------
* ``failover_ms``: the new leader's own ``Leader`` state change (its
  ``time.Now()`` in the raft goroutine) minus the wall-clock time right after
  ``os.kill`` returned.  Both clocks are the same machine's.
* ``failover_seen_ms``: when this process read that line (an upper bound: a
  client watching the servers would know no earlier).
* ``detect_ms``: the first survivor's switch to ``Candidate`` (its follower
  timer found no contact within HeartbeatTimeout).
* ``candidacies``: how many times the survivors became candidates until the
  leader was elected (1 when the first election succeeded).

Expectation (hashicorp/raft 1.1.x): a follower's heartbeat timer is free
running, ``randomTimeout(HeartbeatTimeout)`` = uniform in [T, 2T), and each
time it fires it only checks whether the leader was heard within T; a
candidate waits ``randomTimeout(ElectionTimeout)`` for votes; a follower that
still knows a leader refuses votes (leader stickiness).  So detection alone
takes between T and 3T after the last contact, and failover at Consul's
``raft_multiplier`` 1 (T = 1 s) is near 3 s, not etcd's 1.2 T.  Pre-vote does
not exist in 1.1.x.

Only 127.0.0.1 is used.  Every process started here is SIGKILLed (its whole
process group) when the :class:`HashicorpCluster` context exits, all waits
are bounded, and on Linux the servers also die with the Python process.

Run::

    python -m meshsim.experiments.hashicorp_real --trials 100 --out data/hashicorp/failover.csv
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable

import numpy as np
import pandas as pd

from meshsim._proc import AVAILABLE as DEATHSIG, die_with_parent
from meshsim.experiments.etcd_real import HOST, free_ports, machine_info

SOURCE = Path(__file__).with_name("hashicorp_raft") / "main.go"
GOPATH = Path("/usr/share/gocode")
LIBRARY = "github.com/hashicorp/raft"
DEB_PACKAGE = "golang-github-hashicorp-raft-dev"
INSTALL_HINT = f"Go or hashicorp/raft not installed: apt-get install golang-go {DEB_PACKAGE}"
COLUMNS = [
    "config", "trial", "heartbeat_ms", "election_ms", "lease_ms", "commit_ms",
    "failover_ms", "failover_seen_ms", "detect_ms", "candidacies",
    "killed", "new_leader", "term_before", "term_after",
]


@dataclass(frozen=True)
class Timing:
    """hashicorp/raft Config durations in ms (HeartbeatTimeout, ElectionTimeout, ...).

    >>> Timing(1000, 1000, 500).label
    '1000/1000/500'
    """

    heartbeat_ms: int
    election_ms: int
    lease_ms: int
    commit_ms: int = 50

    @property
    def label(self) -> str:
        return f"{self.heartbeat_ms}/{self.election_ms}/{self.lease_ms}"


#: Consul's raft_multiplier 1 (hashicorp/raft's defaults) and a 5x shorter custom timing.
CONFIGS: tuple[Timing, ...] = (Timing(1000, 1000, 500), Timing(200, 200, 100))


class HashicorpError(RuntimeError):
    """The cluster did not start or elect a leader in time."""


# --------------------------------------------------------------------------- toolchain


def find_go() -> Path | None:
    """The ``go`` command: ``$MESHSIM_GO``, else ``go`` on PATH, else Debian's /usr/lib/go/bin/go."""
    candidates = [os.environ.get("MESHSIM_GO", ""), shutil.which("go") or "", "/usr/lib/go/bin/go"]
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return Path(c)
    return None


def gopath() -> Path:
    """Where the library's sources are: ``$MESHSIM_GOPATH`` or Debian's /usr/share/gocode."""
    return Path(os.environ.get("MESHSIM_GOPATH", str(GOPATH)))


def find_library() -> Path | None:
    """The hashicorp/raft source directory under :func:`gopath`, if installed."""
    d = gopath() / "src" / LIBRARY
    return d if (d / "api.go").is_file() else None


def missing() -> str | None:
    """Why the experiment cannot run here (None when Go and the library are installed)."""
    if find_go() is None:
        return INSTALL_HINT + " (no go command)"
    if find_library() is None:
        return INSTALL_HINT + f" (no {gopath() / 'src' / LIBRARY})"
    return None


def go_version(go: Path | None = None) -> str:
    """``go1.19.8``-style version of the Go toolchain."""
    go = go or find_go()
    if go is None:
        raise FileNotFoundError(INSTALL_HINT)
    out = subprocess.run([str(go), "version"], capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"go version (\S+)", out)
    return m.group(1) if m else out.strip()


def library_version() -> str:
    """The Debian package version of hashicorp/raft (e.g. ``1.1.2-1``), else ``unknown``."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", DEB_PACKAGE],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def build(cache_dir: str | Path | None = None, timeout: float = 300.0) -> Path:
    """Build ``hashicorp_raft/main.go`` once; returns the cached binary.

    The cache key is the source, the Go version and the library's ``api.go``
    and ``raft.go``, so a changed program or library rebuilds.  Builds with
    ``GO111MODULE=off`` against :func:`gopath` only: nothing is downloaded.
    """
    why = missing()
    if why:
        raise FileNotFoundError(why)
    go = find_go()
    assert go is not None
    lib = find_library()
    assert lib is not None
    h = hashlib.sha256(SOURCE.read_bytes())
    h.update(go_version(go).encode())
    for f in ("api.go", "raft.go"):
        h.update((lib / f).read_bytes())
    cache = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / f"meshsim-hcraft-{os.getuid()}"
    binary = cache / f"hcraft-{h.hexdigest()[:16]}"
    if binary.is_file():
        return binary
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="build-", dir=cache))
    try:
        shutil.copy(SOURCE, work / "main.go")
        env = dict(os.environ, GOPATH=str(gopath()), GO111MODULE="off", GOFLAGS="", CGO_ENABLED="0",
                   GOCACHE=str(cache / "gocache"))
        res = subprocess.run([str(go), "build", "-o", "hcraft", "main.go"], cwd=work, env=env,
                             capture_output=True, text=True, timeout=timeout)
        if res.returncode != 0:
            raise HashicorpError(f"go build failed:\n{res.stderr}")
        os.replace(work / "hcraft", binary)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return binary


# --------------------------------------------------------------------------- cluster


@dataclass
class Server:
    index: int
    name: str
    port: int
    log_path: Path
    proc: subprocess.Popen | None = None
    state: str = "Follower"
    term: int = 0
    leader: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    _log: IO[bytes] | None = field(default=None, repr=False)
    _reader: threading.Thread | None = field(default=None, repr=False)

    @property
    def addr(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class HashicorpCluster:
    """``n`` hashicorp/raft servers on 127.0.0.1, one process each.

    A context manager: ``__enter__`` builds the program (cached) and starts
    the servers; ``__exit__`` always SIGKILLs every process group, joins the
    reader threads (bounded) and removes the temporary directory.
    """

    def __init__(self, n: int = 3, timing: Timing = CONFIGS[0], *, base_dir: str | Path | None = None,
                 binary: str | Path | None = None, keep: bool = False):
        if n < 1:
            raise ValueError("n must be >= 1")
        self.n = n
        self.timing = timing
        self.base_dir = Path(base_dir) if base_dir is not None else None
        self.binary = Path(binary) if binary else None
        self.keep = keep
        self.tmp: Path | None = None
        self.servers: list[Server] = []
        self._cond = threading.Condition()

    def __enter__(self) -> HashicorpCluster:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        if self.binary is None:
            self.binary = build()
        if self.base_dir is not None:
            self.base_dir.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix="meshsim-hcraft-", dir=self.base_dir))
        ports = free_ports(self.n)
        self.servers = [Server(i, f"s{i}", ports[i], self.tmp / f"s{i}.log") for i in range(self.n)]
        peers = ",".join(f"{s.name}={s.addr}" for s in self.servers)
        t = self.timing
        for s in self.servers:
            s._log = open(s.log_path, "wb")  # noqa: SIM115 - closed in close()
            s.proc = subprocess.Popen(
                [str(self.binary), "-id", s.name, "-peers", peers,
                 "-heartbeat-ms", str(t.heartbeat_ms), "-election-ms", str(t.election_ms),
                 "-lease-ms", str(t.lease_ms), "-commit-ms", str(t.commit_ms)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=s._log,
                start_new_session=True,
                preexec_fn=die_with_parent if DEATHSIG else None,  # noqa: PLW1509
            )
            s._reader = threading.Thread(target=self._read, args=(s,), daemon=True)
            s._reader.start()

    def _read(self, s: Server) -> None:
        assert s.proc is not None and s.proc.stdout is not None
        for raw in s.proc.stdout:
            recv_ns = time.time_ns()
            try:
                ev = json.loads(raw)
            except ValueError:
                continue
            ev["recv_ns"] = recv_ns
            with self._cond:
                s.events.append(ev)
                if ev.get("ev") == "state":
                    s.state = ev["state"]
                    s.term = int(ev.get("term", s.term))
                    s.leader = s.addr if s.state == "Leader" else ""
                elif ev.get("ev") == "leader":
                    s.leader = ev.get("leader", "")
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        for s in self.servers:
            if s.proc is not None:
                try:
                    os.killpg(s.proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        for s in self.servers:
            if s.proc is not None:
                try:
                    s.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:  # pragma: no cover
                    pass
            if s._reader is not None:
                s._reader.join(timeout=5)
            if s.proc is not None and s.proc.stdout is not None:
                s.proc.stdout.close()
            if s._log is not None:
                s._log.close()
                s._log = None
        if self.tmp is not None and not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def log_tail(self, i: int, lines: int = 10) -> str:
        try:
            text = self.servers[i].log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(f"[{self.servers[i].name}] {t}" for t in text[-lines:])

    def agreed_leader(self) -> tuple[int, int] | None:
        """(leader index, term) when one live server is leader and every other live one names it."""
        with self._cond:
            live = [s for s in self.servers if s.alive]
            leaders = [s for s in live if s.state == "Leader"]
            if len(leaders) != 1:
                return None
            lead = leaders[0]
            if all(s.leader == lead.addr for s in live):
                return lead.index, lead.term
        return None

    def wait_stable(self, hold: float, timeout: float = 30.0) -> tuple[int, int]:
        """Wait until :meth:`agreed_leader` holds, unchanged, for ``hold`` seconds."""
        deadline = time.monotonic() + timeout
        current, since = None, None
        while time.monotonic() < deadline:
            for s in self.servers:
                if s.proc is not None and s.proc.poll() is not None:
                    raise HashicorpError(f"{s.name} exited with code {s.proc.returncode}\n{self.log_tail(s.index)}")
            got = self.agreed_leader()
            now = time.monotonic()
            if got != current:
                current, since = got, (now if got is not None else None)
            elif since is not None and now - since >= hold:
                return current
            with self._cond:
                self._cond.wait(0.01)
        raise HashicorpError(f"no stable leader within {timeout:.0f} s (last seen {current})\n"
                             + "\n".join(self.log_tail(i, 5) for i in range(self.n)))

    def kill(self, i: int) -> int:
        """SIGKILL server ``i``'s process group; returns the wall clock (ns) right after the kill."""
        s = self.servers[i]
        assert s.proc is not None
        os.killpg(s.proc.pid, signal.SIGKILL)
        t_kill = time.time_ns()
        s.proc.wait(timeout=10)
        return t_kill

    def watch_failover(self, survivors: list[int], t_kill_ns: int, timeout: float) -> dict[str, Any]:
        """Wait until a survivor reports becoming leader after ``t_kill_ns``.

        Returns the new leader's index, its event, the first Candidate event
        and the number of Candidate transitions of the survivors since the
        kill; ``new_leader`` is None on timeout.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                cands, lead = [], None
                for i in survivors:
                    for ev in self.servers[i].events:
                        if ev.get("ev") != "state" or ev["t_ns"] < t_kill_ns:
                            continue
                        if ev["state"] == "Candidate":
                            cands.append(ev)
                        elif ev["state"] == "Leader" and (lead is None or ev["t_ns"] < lead[1]["t_ns"]):
                            lead = (i, ev)
                if lead is not None:
                    first = min(cands, key=lambda e: e["t_ns"]) if cands else None
                    return {"new_leader": lead[0], "event": lead[1], "first_candidate": first,
                            "candidacies": sum(e["t_ns"] <= lead[1]["t_ns"] for e in cands)}
                left = deadline - time.monotonic()
                if left <= 0:
                    return {"new_leader": None, "event": None, "first_candidate": None,
                            "candidacies": len(cands)}
                self._cond.wait(min(left, 0.05))


# --------------------------------------------------------------------------- trials


def failover_trials(timing: Timing, trials: int, seed: int = 0, *, base_dir: str | Path | None = None,
                    hold: float | None = None, trial_timeout: float | None = None,
                    start_timeout: float | None = None, n: int = 3, binary: str | Path | None = None,
                    progress: Callable[[dict[str, Any]], None] | None = None) -> pd.DataFrame:
    """Kill the leader of a fresh ``n``-server cluster ``trials`` times; one row per kill.

    ``hold`` (default HeartbeatTimeout / 2) is how long the leader must be
    agreed before the kill; ``trial_timeout`` (default max(10 s, 10
    ElectionTimeouts)) bounds the wait for a new leader (NaN times on
    timeout); ``start_timeout`` (default max(30 s, 30 ElectionTimeouts))
    bounds start-up, past which :class:`HashicorpError` is raised.  Columns:
    :data:`COLUMNS` (times in ms from the kill).
    """
    rng = random.Random(seed)
    hold = timing.heartbeat_ms / 2000 if hold is None else hold
    trial_timeout = max(10.0, 10 * timing.election_ms / 1000) if trial_timeout is None else trial_timeout
    start_timeout = max(30.0, 30 * timing.election_ms / 1000) if start_timeout is None else start_timeout
    binary = Path(binary) if binary else build()
    rows: list[dict[str, Any]] = []
    for trial in range(trials):
        with HashicorpCluster(n, timing, base_dir=base_dir, binary=binary) as cluster:
            cluster.wait_stable(hold, start_timeout)
            time.sleep(rng.uniform(0.0, timing.heartbeat_ms / 1000))
            got = cluster.agreed_leader() or cluster.wait_stable(0.0, start_timeout)
            leader, term_before = got
            survivors = [i for i in range(n) if i != leader]
            t_kill = cluster.kill(leader)
            res = cluster.watch_failover(survivors, t_kill, trial_timeout)
            row: dict[str, Any] = {
                "config": timing.label, "trial": trial, "heartbeat_ms": timing.heartbeat_ms,
                "election_ms": timing.election_ms, "lease_ms": timing.lease_ms, "commit_ms": timing.commit_ms,
                "failover_ms": np.nan, "failover_seen_ms": np.nan, "detect_ms": np.nan,
                "candidacies": res["candidacies"], "killed": cluster.servers[leader].name, "new_leader": "",
                "term_before": term_before, "term_after": -1,
            }
            if res["first_candidate"] is not None:
                row["detect_ms"] = round((res["first_candidate"]["t_ns"] - t_kill) / 1e6, 3)
            if res["new_leader"] is not None:
                ev = res["event"]
                row.update(failover_ms=round((ev["t_ns"] - t_kill) / 1e6, 3),
                           failover_seen_ms=round((ev["recv_ns"] - t_kill) / 1e6, 3),
                           new_leader=cluster.servers[res["new_leader"]].name,
                           term_after=int(ev.get("term", -1)))
        rows.append(row)
        if progress is not None:
            progress(row)
    df = pd.DataFrame(rows, columns=COLUMNS)
    return df.astype({"trial": int, "heartbeat_ms": int, "election_ms": int, "lease_ms": int,
                      "commit_ms": int, "candidacies": int, "term_before": int, "term_after": int})


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Per timing: trials, timeouts, min/median/p90/p95/max/mean of failover_ms,
    the median detection time and how many trials needed more than one election
    (the term went up by more than one).

    >>> d = pd.DataFrame({"heartbeat_ms": [200] * 3, "election_ms": [200] * 3, "lease_ms": [100] * 3,
    ...                   "failover_ms": [400.0, 500.0, 900.0], "detect_ms": [300.0, 350.0, 400.0],
    ...                   "term_before": [2, 2, 2], "term_after": [3, 4, 3]})
    >>> s = summarize(d).iloc[0]
    >>> int(s.trials), float(s.median_ms), int(s.repeat_elections)
    (3, 500.0, 1)
    """
    out = []
    for (hb, el, ls), g in df.groupby(["heartbeat_ms", "election_ms", "lease_ms"], sort=False):
        x = g["failover_ms"].dropna().to_numpy()
        ok = g.dropna(subset=["failover_ms"])

        def q(p: float, x: np.ndarray = x) -> float:
            return float(np.percentile(x, p)) if len(x) else np.nan

        out.append({
            "heartbeat_ms": int(hb), "election_ms": int(el), "lease_ms": int(ls),
            "trials": len(g), "timeouts": int(len(g) - len(x)),
            "min_ms": q(0), "median_ms": q(50), "p90_ms": q(90), "p95_ms": q(95), "max_ms": q(100),
            "mean_ms": float(np.mean(x)) if len(x) else np.nan,
            "detect_median_ms": float(ok["detect_ms"].median()) if len(ok) else np.nan,
            "repeat_elections": int((ok["term_after"] - ok["term_before"] > 1).sum()),
        })
    return pd.DataFrame(out)


def timer_model(heartbeat_ms: float, election_ms: float, draws: int = 100_000, seed: int = 0,
                contact_ms: float = 75.0, overhead_ms: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Failover times (ms) and term increments that hashicorp/raft 1.1's timer rules predict.

    Not meshsim's Raft model: a direct Monte Carlo of the library's rules for
    three servers, one killed at time 0, as a back-of-envelope check of the
    measurements.  ``U(T)`` is ``randomTimeout(T)``, uniform in [T, 2T).

    * The followers last heard the leader ``c ~ U[0, contact_ms)`` before the
      kill (the leader's replication loop sends an AppendEntries every
      ``U(CommitTimeout)`` even when idle, so contact is more recent than the
      ``U(HeartbeatTimeout/10)`` heartbeats alone would make it).
    * Each survivor's follower timer is free running: it fires every
      ``U(HeartbeatTimeout)`` (random phase: the equilibrium residual of that
      renewal process) and only then checks whether the leader was heard
      within HeartbeatTimeout.  The first fire at or after ``T - c`` makes it
      a candidate: survivor A at ``a``, B at ``b > a``.
    * A follower that still knows a leader rejects every vote request (leader
      stickiness), so A's campaigns before ``b`` fail; A retries every
      ``U(ElectionTimeout)``.  If A is still in its first term at ``b``, both
      are candidates of the same term and the vote splits: whoever times out
      next, A's retry or B's ``U(ElectionTimeout)``, wins one term later.  If
      A had already moved to a higher term, B's vote request is answered with
      it, B falls back to follower with no leader and a fresh
      ``U(HeartbeatTimeout)`` timer: A's next retry wins unless B's timer fires
      first (then B wins).

    ``overhead_ms`` adds a vote round trip.  Returns (failover_ms, term
    increments).

    >>> f, k = timer_model(1000, 1000, draws=2000, seed=0)
    >>> bool(2000 < np.median(f) < 3500), int(k.min()) >= 2
    (True, True)
    """
    rng = np.random.default_rng(seed)
    t, e = float(heartbeat_ms), float(election_ms)
    c = rng.uniform(0, contact_ms, draws)
    det = np.empty((draws, 2))
    for j in range(2):
        fire = rng.uniform(0, 1, draws) * t * np.sqrt(1 + 3 * rng.uniform(0, 1, draws))  # residual
        while True:
            late = fire < t - c
            if not late.any():
                break
            fire = np.where(late, fire + rng.uniform(t, 2 * t, draws), fire)
        det[:, j] = fire
    a, b = det.min(axis=1), det.max(axis=1)
    nxt = a + rng.uniform(e, 2 * e, draws)  # A's next campaign
    retries = np.zeros(draws, dtype=int)  # A's failed campaigns before b, beyond the first
    while True:
        early = nxt <= b
        if not early.any():
            break
        retries += early
        nxt = np.where(early, nxt + rng.uniform(e, 2 * e, draws), nxt)
    b_timer = np.where(retries == 0, b + rng.uniform(e, 2 * e, draws), b + rng.uniform(t, 2 * t, draws))
    elected = np.minimum(nxt, b_timer)
    return elected + overhead_ms, retries + 2


def markdown_table(summary: pd.DataFrame) -> str:
    """The summary as the Markdown table that data/hashicorp/README.md and the docs show.

    >>> s = pd.DataFrame([{"heartbeat_ms": 200, "election_ms": 200, "lease_ms": 100, "trials": 3,
    ...     "timeouts": 0, "min_ms": 400.0, "median_ms": 500.0, "p90_ms": 820.0, "p95_ms": 860.0,
    ...     "max_ms": 900.0, "mean_ms": 600.0, "detect_median_ms": 350.0, "repeat_elections": 1}])
    >>> print(markdown_table(s).splitlines()[-1])
    | 200 / 200 / 100 | 3 | 0 | 400 | 500 | 820 | 860 | 900 | 600 | 350 | 1 |
    """
    head = ("| heartbeat / election / lease (ms) | trials | timeouts | min | median | p90 | p95 | max | mean "
            "| detection (median) | repeated elections |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
    rows = [
        f"| {r.heartbeat_ms} / {r.election_ms} / {r.lease_ms} | {r.trials} | {r.timeouts} | {r.min_ms:.0f} "
        f"| {r.median_ms:.0f} | {r.p90_ms:.0f} | {r.p95_ms:.0f} | {r.max_ms:.0f} | {r.mean_ms:.0f} "
        f"| {r.detect_median_ms:.0f} | {r.repeat_elections} |"
        for r in summary.itertuples()
    ]
    return head + "\n".join(rows) + "\n"


def model_table(df: pd.DataFrame, draws: int = 100_000, seed: int = 0) -> str:
    """Markdown table of :func:`timer_model` beside the measurements in ``df``, per timing.

    Quantiles of failover_ms and the share of trials whose term went up by
    more than two (the first survivor had already retried before the second
    one campaigned).
    """
    head = ("| heartbeat / election (ms) | | min | p10 | median | p90 | p95 | max | mean | term +3 or more |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n")
    rows = []
    for (hb, el), g in df.groupby(["heartbeat_ms", "election_ms"], sort=False):
        model, k = timer_model(hb, el, draws=draws, seed=seed)
        ok = g.dropna(subset=["failover_ms"])
        for name, x, jumps in (("model", model, k), ("measured", ok["failover_ms"].to_numpy(),
                                                     (ok["term_after"] - ok["term_before"]).to_numpy())):
            q = np.percentile(x, [0, 10, 50, 90, 95, 100])
            rows.append(f"| {hb} / {el} | {name} | " + " | ".join(f"{v:.0f}" for v in q)
                        + f" | {np.mean(x):.0f} | {100 * np.mean(jumps > 2):.1f} % |")
    return head + "\n".join(rows) + "\n"


# --------------------------------------------------------------------------- CLI


def _parse_configs(text: str) -> list[Timing]:
    out = []
    for part in text.split(","):
        nums = [int(x) for x in part.strip().split("/")]
        out.append(Timing(*nums))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m meshsim.experiments.hashicorp_real",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=100, help="leader kills per timing (default 100)")
    p.add_argument("--out", type=Path, default=Path("data/hashicorp/failover.csv"),
                   help="CSV to write; a .json with versions, machine and date goes beside it")
    p.add_argument("--configs", default=",".join(t.label for t in CONFIGS),
                   help="heartbeat/election/lease[/commit] in ms, comma-separated (default 1000/1000/500,200/200/100)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--base-dir", type=Path, default=None, help="where the temporary directories go")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)

    why = missing()
    if why:
        print(why, file=sys.stderr)
        return 2
    binary = build()
    started = time.time()
    load_before = list(os.getloadavg())
    timings = _parse_configs(args.configs)
    frames = []
    for k, timing in enumerate(timings):
        t0 = time.time()

        def show(row: dict[str, Any]) -> None:
            if not args.quiet:
                print(f"  {row['config']:>14} trial {row['trial']:3d}: {row['failover_ms']:8.1f} ms "
                      f"(detect {row['detect_ms']:7.1f}, {row['candidacies']} cand.) {row['killed']} -> "
                      f"{row['new_leader'] or '-'} term {row['term_before']} -> {row['term_after']}", flush=True)

        frames.append(failover_trials(timing, args.trials, seed=args.seed + k, base_dir=args.base_dir,
                                      binary=binary, progress=show))
        print(f"{timing.label} ms: {args.trials} trials in {time.time() - t0:.0f} s", flush=True)
    data = pd.concat(frames, ignore_index=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    data.to_csv(args.out, index=False)
    summary = summarize(data)
    meta = {
        "library": LIBRARY,
        "library_version": library_version(),
        "library_source": str(find_library()),
        "go_version": go_version(),
        "build": "GOPATH=/usr/share/gocode GO111MODULE=off go build (Debian packages only)",
        "transport": "raft.NewTCPTransport on 127.0.0.1, maxPool 3, timeout 10 s",
        "stores": "raft.NewInmemStore (log + stable), raft.NewInmemSnapshotStore",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "duration_s": round(time.time() - started, 1),
        "trials_per_config": args.trials,
        "configs": [{"heartbeat_ms": t.heartbeat_ms, "election_ms": t.election_ms, "lease_ms": t.lease_ms,
                     "commit_ms": t.commit_ms} for t in timings],
        "seed": args.seed,
        "servers": 3,
        "pre_vote": False,  # hashicorp/raft 1.1.x has none
        "loadavg_before": load_before,
        "loadavg_after": list(os.getloadavg()),
        "machine": machine_info(),
        "summary": json.loads(summary.to_json(orient="records")),
    }
    args.out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(markdown_table(summary), end="")
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
