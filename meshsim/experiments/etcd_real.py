"""Leader failover of a real three-member etcd cluster on loopback.

The experiment starts ``n`` etcd processes (Debian package ``etcd-server``) on
127.0.0.1 with static ``--initial-cluster`` bootstrap, kills the leader with
SIGKILL over and over and measures how long it takes until a surviving member
is leader in a higher term.  The killed member is restarted on its old data
directory (it rejoins as a follower) and the cluster is left to settle before
the next kill.

Measurement
-----------
Right after ``os.kill(leader, SIGKILL)`` one thread per surviving member polls
that member's ``POST /v3/maintenance/status`` (the grpc-gateway, JSON over a
persistent HTTP/1.1 connection) every ``poll_ms`` (default 5 ms).  A poll is
*positive* when the member reports ``raftTerm > term_before`` and a ``leader``
that is a surviving member.  A follower only learns a leader from that
leader's own messages, so a positive answer from any survivor proves that the
election is over.

* ``failover_ms``: from the kill until the first positive answer was received
  (an upper bound of the real election time);
* ``failover_lo_ms``: from the kill until the last negative poll of the new
  leader was *sent* (a lower bound: it was not leader when it handled it);
* ``failover_log_ms``: the new leader's own log line ``became leader at term
  N`` (zap timestamps, millisecond resolution, wall clock) minus the wall-clock
  time of the kill: an independent cross-check.

The error of ``failover_ms`` is therefore at most ``failover_ms -
failover_lo_ms``, about one poll interval plus one request round trip
(typically 5-7 ms here, against failovers of hundreds of milliseconds).

Expectation (etcd 3.4 as in Debian 12): raft ticks once per heartbeat
interval, ``ElectionTick = election / heartbeat``; a follower draws its
election timeout uniformly from ``[ElectionTick, 2*ElectionTick)`` ticks and
campaigns after that many ticks without hearing from the leader.  With two
survivors the first to time out wins, so failover is about the election
timeout plus a third of it, minus the part of a heartbeat interval that had
already elapsed at the kill, plus a vote round trip and WAL fsyncs.
CheckQuorum is always on in etcd (a follower that heard from a leader within
the election timeout ignores vote requests); PreVote is off by default in
3.4 (``--pre-vote``, default on from 3.5).

Only 127.0.0.1 is used.  Every process started here is SIGKILLed and every
temporary directory removed when the :class:`EtcdCluster` context exits (and
on Linux the etcd processes also die with the Python process that started
them).

Run::

    python -m meshsim.experiments.etcd_real --trials 30 --out data/etcd/failover.csv
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from .._proc import AVAILABLE as DEATHSIG, die_with_parent

HOST = "127.0.0.1"
#: (heartbeat_ms, election_ms) pairs of the issue: etcd's "fast" setting and its defaults.
CONFIGS: tuple[tuple[int, int], ...] = ((50, 500), (100, 1000))
DEFAULT_POLL_MS = 5.0
INSTALL_HINT = "etcd not installed: apt-get install etcd-server"
COLUMNS = [
    "config", "trial", "heartbeat_ms", "election_ms", "failover_ms", "failover_lo_ms",
    "failover_log_ms", "killed", "new_leader", "term_before", "term_after", "poll_ms",
]

_LEADER_LOG = re.compile(r'"ts":"([^"]+)".*"msg":"([0-9a-f]+) became leader at term (\d+)"')


class EtcdError(RuntimeError):
    """The etcd cluster did not start, settle or elect a leader in time."""


# --------------------------------------------------------------------------- binary


def find_etcd() -> Path | None:
    """The etcd server binary: ``$MESHSIM_ETCD``, else ``etcd`` on PATH, else /usr/bin/etcd.

    Debian ships it in the package ``etcd-server`` (the ``etcdctl`` client is in
    ``etcd-client``, which this experiment does not need).
    """
    candidates = []
    if os.environ.get("MESHSIM_ETCD"):
        candidates.append(os.environ["MESHSIM_ETCD"])
    which = shutil.which("etcd")
    if which:
        candidates.append(which)
    candidates.append("/usr/bin/etcd")
    for c in candidates:
        p = Path(c)
        if p.is_file() and os.access(p, os.X_OK):
            return p
    return None


def etcd_version(binary: Path | str | None = None) -> str:
    """``X.Y.Z`` as printed by ``etcd --version``."""
    binary = binary or find_etcd()
    if binary is None:
        raise FileNotFoundError(INSTALL_HINT)
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True,
                         timeout=30, env=_etcd_env()).stdout
    m = re.search(r"etcd Version:\s*(\S+)", out)
    return m.group(1) if m else out.strip().splitlines()[0]


def _etcd_env() -> dict[str, str]:
    # etcd reads every ETCD_* variable as a flag: pass none of the caller's.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    if arch != "amd64":  # etcd 3.4 refuses to start on "unsupported" architectures without this
        env["ETCD_UNSUPPORTED_ARCH"] = arch
    return env


# --------------------------------------------------------------------------- helpers


def free_ports(k: int) -> list[int]:
    """``k`` distinct TCP ports that are free on 127.0.0.1 right now."""
    socks = []
    try:
        for _ in range(k):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


class StatusClient:
    """``POST /v3/maintenance/status`` on one member, over a kept-alive connection."""

    def __init__(self, port: int, timeout: float = 0.5):
        self.port = port
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def status(self) -> dict[str, int] | None:
        """member_id, leader, term, index; None when the member does not answer."""
        for attempt in (0, 1):  # a kept-alive connection may have been closed by the server
            try:
                if self._conn is None:
                    self._conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
                self._conn.request("POST", "/v3/maintenance/status", body=b"{}",
                                   headers={"Content-Type": "application/json"})
                resp = self._conn.getresponse()
                body = resp.read()
                if resp.status != 200:
                    return None
                d = json.loads(body)
                return {
                    "member_id": int(d["header"]["member_id"]),
                    "leader": int(d.get("leader", 0) or 0),
                    "term": int(d.get("raftTerm", 0) or 0),
                    "index": int(d.get("raftIndex", 0) or 0),
                }
            except (OSError, http.client.HTTPException, ValueError, KeyError):
                self.close()
                if attempt:
                    return None
        return None  # pragma: no cover

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


# --------------------------------------------------------------------------- cluster


@dataclass
class Member:
    index: int
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen | None = None
    member_id: int | None = None
    starts: int = 0
    _log: Any = field(default=None, repr=False)

    @property
    def client_url(self) -> str:
        return f"http://{HOST}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{HOST}:{self.peer_port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class EtcdCluster:
    """``n`` etcd members on 127.0.0.1, each with its own client/peer port and data dir.

    A context manager: ``__enter__`` starts every member and waits until all are
    healthy and agree on a leader; ``__exit__`` always SIGKILLs every process
    and removes the temporary directory (set ``keep=True`` to keep the logs).
    """

    def __init__(self, n: int = 3, heartbeat_ms: int = 100, election_ms: int = 1000,
                 base_dir: str | Path | None = None, base_port: int | None = None, *,
                 etcd: str | Path | None = None, start_timeout: float = 30.0, keep: bool = False):
        if n < 1:
            raise ValueError("n must be >= 1")
        if election_ms < 5 * heartbeat_ms:
            raise ValueError("etcd requires election timeout >= 5 x heartbeat interval")
        binary = Path(etcd) if etcd else find_etcd()
        if binary is None:
            raise FileNotFoundError(INSTALL_HINT)
        self.etcd = binary
        self.n = n
        self.heartbeat_ms = int(heartbeat_ms)
        self.election_ms = int(election_ms)
        self.base_dir = Path(base_dir) if base_dir is not None else None
        self.base_port = base_port
        self.start_timeout = start_timeout
        self.keep = keep
        self.tmp: Path | None = None
        self.members: list[Member] = []
        self._clients: dict[int, StatusClient] = {}

    # ---- life cycle

    def __enter__(self) -> EtcdCluster:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        if self.base_dir is not None:
            self.base_dir.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix="meshsim-etcd-", dir=self.base_dir))
        if self.base_port is not None:
            ports = list(range(self.base_port, self.base_port + 2 * self.n))
            busy = [p for p in ports if not _port_is_free(p)]
            if busy:
                raise EtcdError(f"ports in use on {HOST}: {busy}")
        else:
            ports = free_ports(2 * self.n)
        self.members = [
            Member(i, f"m{i}", ports[2 * i], ports[2 * i + 1], self.tmp / f"m{i}.etcd", self.tmp / f"m{i}.log")
            for i in range(self.n)
        ]
        for m in self.members:
            self._spawn(m)
        self.wait_healthy(self.start_timeout)

    def close(self) -> None:
        for c in self._clients.values():
            c.close()
        self._clients.clear()
        for m in self.members:
            if m.proc is not None and m.proc.poll() is None:
                try:
                    m.proc.kill()
                except ProcessLookupError:  # pragma: no cover
                    pass
            if m.proc is not None:
                try:
                    m.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:  # pragma: no cover
                    pass
            if m._log is not None:
                m._log.close()
                m._log = None
        if self.tmp is not None and not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def command(self, m: Member) -> list[str]:
        cluster = ",".join(f"{x.name}={x.peer_url}" for x in self.members)
        return [
            str(self.etcd),
            "--name", m.name,
            "--data-dir", str(m.data_dir),
            "--listen-client-urls", m.client_url,
            "--advertise-client-urls", m.client_url,
            "--listen-peer-urls", m.peer_url,
            "--initial-advertise-peer-urls", m.peer_url,
            "--initial-cluster", cluster,
            "--initial-cluster-state", "new",
            "--initial-cluster-token", f"meshsim-{os.getpid()}-{self.tmp.name if self.tmp else ''}",
            "--heartbeat-interval", str(self.heartbeat_ms),
            "--election-timeout", str(self.election_ms),
            "--logger", "zap",
            "--log-outputs", "stderr",
        ]

    def _spawn(self, m: Member) -> None:
        if m._log is None:
            m._log = open(m.log_path, "ab")  # noqa: SIM115 - closed in close()
        m._log.write(f"\n### meshsim: start {m.starts} of {m.name} at {time.time():.6f}\n".encode())
        m._log.flush()
        m.proc = subprocess.Popen(
            self.command(m), stdin=subprocess.DEVNULL, stdout=m._log, stderr=subprocess.STDOUT,
            env=_etcd_env(), start_new_session=True,
            preexec_fn=die_with_parent if DEATHSIG else None,  # noqa: PLW1509
        )
        m.starts += 1

    def kill(self, i: int) -> tuple[float, float]:
        """SIGKILL member ``i``; returns (time.perf_counter(), time.time()) of the kill."""
        m = self.members[i]
        assert m.proc is not None
        os.kill(m.proc.pid, signal.SIGKILL)
        t_kill, wall_kill = time.perf_counter(), time.time()
        m.proc.wait()
        self.client(i).close()
        return t_kill, wall_kill

    def restart(self, i: int) -> None:
        """Start member ``i`` again on its old data dir: it rejoins the cluster."""
        m = self.members[i]
        if m.alive:
            raise EtcdError(f"{m.name} is still running")
        self._spawn(m)

    # ---- queries

    def client(self, i: int) -> StatusClient:
        if i not in self._clients:
            self._clients[i] = StatusClient(self.members[i].client_port)
        return self._clients[i]

    def status(self, i: int) -> dict[str, int] | None:
        st = self.client(i).status()
        if st is not None:
            self.members[i].member_id = st["member_id"]
        return st

    def index_of(self, member_id: int) -> int | None:
        for m in self.members:
            if m.member_id == member_id:
                return m.index
        return None

    def healthy(self, i: int, timeout: float = 2.0) -> bool:
        """``GET /health`` says true (etcd checks it has a leader and can serve a read)."""
        conn = http.client.HTTPConnection(HOST, self.members[i].client_port, timeout=timeout)
        try:
            conn.request("GET", "/health")
            resp = conn.getresponse()
            return resp.status == 200 and json.loads(resp.read()).get("health") in ("true", True)
        except (OSError, http.client.HTTPException, ValueError):
            return False
        finally:
            conn.close()

    def agreed_leader(self) -> tuple[int, int] | None:
        """(leader index, term) when every member answers and all agree; else None."""
        seen = set()
        for m in self.members:
            if not m.alive:
                raise EtcdError(f"{m.name} exited with code {m.proc.returncode if m.proc else None}; "
                                f"log: {m.log_path}\n{self.log_tail(m.index)}")
            st = self.status(m.index)
            if st is None or st["leader"] == 0:
                return None
            seen.add((st["leader"], st["term"]))
        if len(seen) != 1:
            return None
        leader_id, term = seen.pop()
        idx = self.index_of(leader_id)
        return None if idx is None else (idx, term)

    def wait_stable(self, hold: float | None = None, timeout: float = 30.0,
                    interval: float = 0.02) -> tuple[int, int]:
        """Wait until all members agree on one leader and term for ``hold`` seconds.

        ``hold`` defaults to one election timeout.  Returns (leader index, term).
        """
        hold = self.election_ms / 1000 if hold is None else hold
        deadline = time.monotonic() + timeout
        since: float | None = None
        current: tuple[int, int] | None = None
        while time.monotonic() < deadline:
            now = time.monotonic()
            got = self.agreed_leader()
            if got is None or got != current:
                current, since = got, (now if got is not None else None)
            elif since is not None and now - since >= hold:
                return current
            time.sleep(interval)
        raise EtcdError(f"no stable leader within {timeout:.0f} s (last seen: {current})\n"
                        + "\n".join(self.log_tail(m.index, 5) for m in self.members))

    def wait_healthy(self, timeout: float = 30.0) -> tuple[int, int]:
        """Every member answers /health and all agree on a leader."""
        deadline = time.monotonic() + timeout
        pending = set(range(self.n))
        while pending and time.monotonic() < deadline:
            for i in sorted(pending):
                m = self.members[i]
                if not m.alive:
                    raise EtcdError(f"{m.name} exited with code {m.proc.returncode if m.proc else None}\n"
                                    f"{self.log_tail(i)}")
                if self.healthy(i):
                    pending.discard(i)
            if pending:
                time.sleep(0.05)
        if pending:
            raise EtcdError(f"members {sorted(pending)} not healthy within {timeout:.0f} s\n"
                            + "\n".join(self.log_tail(i, 5) for i in sorted(pending)))
        return self.wait_stable(hold=0.0, timeout=max(1.0, deadline - time.monotonic()))

    def log_tail(self, i: int, lines: int = 20) -> str:
        try:
            text = self.members[i].log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(f"[{self.members[i].name}] {t}" for t in text[-lines:])

    def leader_log_time(self, i: int, term: int) -> float | None:
        """Wall-clock time (s) of member ``i``'s log line 'became leader at term ``term``'."""
        try:
            text = self.members[i].log_path.read_text(errors="replace")
        except OSError:
            return None
        for m in _LEADER_LOG.finditer(text):
            if int(m.group(3)) == term:
                ts = m.group(1).replace("Z", "+00:00")
                try:
                    return dt.datetime.fromisoformat(ts).timestamp()
                except ValueError:
                    return None
        return None

    # ---- the measurement

    def watch_failover(self, survivors: list[int], term_before: int, t_kill: float,
                       timeout: float, poll_ms: float = DEFAULT_POLL_MS) -> dict[str, Any]:
        """Poll the survivors until one of them is known to lead a term > ``term_before``.

        Returns new_leader (index), term_after, t_hi (perf_counter of the first
        positive answer) and t_lo (send time of the new leader's last negative
        poll, ``t_kill`` if none), or ``new_leader=None`` on timeout.
        """
        ids = {self.members[i].member_id: i for i in survivors}
        done = threading.Event()
        lock = threading.Lock()
        last_negative_sent = dict.fromkeys(survivors, t_kill)
        found: dict[str, Any] = {}
        period = poll_ms / 1000.0
        deadline = t_kill + timeout

        def poll(i: int) -> None:
            client = StatusClient(self.members[i].client_port, timeout=max(0.2, 2 * period))
            try:
                next_at = time.perf_counter()
                while not done.is_set() and time.perf_counter() < deadline:
                    sent = time.perf_counter()
                    st = client.status()
                    recv = time.perf_counter()
                    positive = (st is not None and st["term"] > term_before and st["leader"] in ids)
                    with lock:
                        if positive:
                            if "t_hi" not in found:
                                found.update(t_hi=recv, new_leader=ids[st["leader"]],
                                             term_after=st["term"], reporter=i)
                                done.set()
                        elif st is not None:
                            last_negative_sent[i] = sent
                    next_at += period
                    delay = next_at - time.perf_counter()
                    if delay > 0:
                        done.wait(delay)
                    else:
                        next_at = time.perf_counter()
            finally:
                client.close()

        threads = [threading.Thread(target=poll, args=(i,), daemon=True) for i in survivors]
        for t in threads:
            t.start()
        done.wait(max(0.0, deadline - time.perf_counter()))
        done.set()
        for t in threads:
            t.join()
        if "t_hi" not in found:
            return {"new_leader": None, "term_after": None, "t_hi": None, "t_lo": None}
        found["t_lo"] = last_negative_sent[found["new_leader"]]
        return found


# --------------------------------------------------------------------------- trials


def failover_trials(heartbeat_ms: int, election_ms: int, trials: int, seed: int = 0, *,
                    base_dir: str | Path | None = None, poll_ms: float = DEFAULT_POLL_MS,
                    trial_timeout: float | None = None, settle: float | None = None,
                    settle_timeout: float | None = None, n: int = 3, etcd: str | Path | None = None,
                    progress: Callable[[dict[str, Any]], None] | None = None) -> pd.DataFrame:
    """Kill the leader ``trials`` times in one fresh cluster; one row per kill.

    Each trial: wait until all ``n`` members agree on a leader for ``settle``
    seconds (default: one election timeout); sleep uniform in [0, heartbeat)
    so the kill falls at a random point of the heartbeat cycle; SIGKILL the
    leader; measure the time until a survivor is known to lead a higher term
    (bounded by ``trial_timeout``, default max(10 s, 10 election timeouts):
    on timeout the row has NaN times); restart the killed member.  Settling
    is bounded by ``settle_timeout`` (default max(30 s, 30 election
    timeouts)); past it :class:`EtcdError` is raised.

    Columns: config, trial, heartbeat_ms, election_ms, failover_ms,
    failover_lo_ms, failover_log_ms, killed, new_leader, term_before,
    term_after, poll_ms (times in milliseconds from the kill; see the module
    docstring for what each bound means).
    """
    rng = random.Random(seed)
    trial_timeout = max(10.0, 10 * election_ms / 1000) if trial_timeout is None else trial_timeout
    if settle_timeout is None:
        settle_timeout = max(30.0, 30 * election_ms / 1000)
    config = f"{heartbeat_ms}/{election_ms}"
    rows: list[dict[str, Any]] = []
    with EtcdCluster(n, heartbeat_ms, election_ms, base_dir=base_dir, etcd=etcd) as cluster:
        for trial in range(trials):
            leader, term_before = cluster.wait_stable(hold=settle, timeout=settle_timeout)
            time.sleep(rng.uniform(0.0, heartbeat_ms / 1000))
            # re-read just before the kill: the leader may have changed during the sleep
            got = cluster.agreed_leader()
            if got is not None:
                leader, term_before = got
            survivors = [i for i in range(n) if i != leader]
            t_kill, wall_kill = cluster.kill(leader)
            res = cluster.watch_failover(survivors, term_before, t_kill, trial_timeout, poll_ms)
            row: dict[str, Any] = {
                "config": config, "trial": trial, "heartbeat_ms": heartbeat_ms, "election_ms": election_ms,
                "failover_ms": np.nan, "failover_lo_ms": np.nan, "failover_log_ms": np.nan,
                "killed": cluster.members[leader].name, "new_leader": "",
                "term_before": term_before, "term_after": -1, "poll_ms": poll_ms,
            }
            if res["new_leader"] is not None:
                new = res["new_leader"]
                row.update(
                    failover_ms=round((res["t_hi"] - t_kill) * 1000, 3),
                    failover_lo_ms=round((res["t_lo"] - t_kill) * 1000, 3),
                    new_leader=cluster.members[new].name, term_after=res["term_after"],
                )
                # the log line is written within microseconds of the state change, but poll
                # for it briefly: zap may not have flushed it yet
                for _ in range(20):
                    ts = cluster.leader_log_time(new, res["term_after"])
                    if ts is not None:
                        row["failover_log_ms"] = round((ts - wall_kill) * 1000, 1)
                        break
                    time.sleep(0.01)
            rows.append(row)
            if progress is not None:
                progress(row)
            cluster.restart(leader)
        cluster.wait_stable(hold=settle, timeout=settle_timeout)
    df = pd.DataFrame(rows, columns=COLUMNS)
    return df.astype({"trial": int, "heartbeat_ms": int, "election_ms": int,
                      "term_before": int, "term_after": int})


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Per configuration: trials, timeouts, min/median/p90/max/mean of failover_ms,
    the mean measurement resolution and how often the new term was more than one higher."""
    out = []
    for (hb, el), g in df.groupby(["heartbeat_ms", "election_ms"], sort=True):
        x = g["failover_ms"].dropna().to_numpy()
        ok = g.dropna(subset=["failover_ms"])
        out.append({
            "heartbeat_ms": hb, "election_ms": el, "trials": len(g), "timeouts": int(len(g) - len(x)),
            "min_ms": float(np.min(x)) if len(x) else np.nan,
            "median_ms": float(np.median(x)) if len(x) else np.nan,
            "p90_ms": float(np.percentile(x, 90)) if len(x) else np.nan,
            "max_ms": float(np.max(x)) if len(x) else np.nan,
            "mean_ms": float(np.mean(x)) if len(x) else np.nan,
            "resolution_ms": float((ok["failover_ms"] - ok["failover_lo_ms"]).mean()) if len(ok) else np.nan,
            "term_jumps_gt1": int((ok["term_after"] - ok["term_before"] > 1).sum()),
        })
    return pd.DataFrame(out)


def tick_model(heartbeat_ms: float, election_ms: float, draws: int = 100_000, seed: int = 0,
               overhead_ms: float = 0.0) -> np.ndarray:
    """Failover times (ms) that etcd's election rules predict: a back-of-envelope check.

    Not meshsim's Raft model: a direct Monte Carlo of etcd-raft's timers for
    three members, one killed.  Raft ticks every heartbeat; ``k = election //
    heartbeat``.  Both survivors received the last heartbeat at time 0, the
    kill falls at ``u ~ U[0, H)``; survivor ``j`` ticks at ``phi_j + i*H``
    (``phi_j ~ U[0, H)``) and campaigns at its ``R_j``-th tick, ``R_j``
    uniform in ``{k, ..., 2k-1}``.  CheckQuorum: the other survivor ignores
    the vote request while it has counted fewer than ``k`` ticks since the
    heartbeat; then both end up candidates of the same term, split the vote,
    and whoever times out first again (new ``R`` counted from its own
    campaign) wins one term later.  PreVote off.  ``overhead_ms`` adds the
    vote round trip and WAL fsyncs.
    """
    rng = np.random.default_rng(seed)
    h = float(heartbeat_ms)
    k = int(election_ms // heartbeat_ms)
    u = rng.uniform(0, h, draws)
    phi = rng.uniform(0, h, (draws, 2))
    r = rng.integers(k, 2 * k, (draws, 2))
    t = phi + (r - 1) * h  # campaign times of the two survivors
    c = np.argmin(t, axis=1)
    rows = np.arange(draws)
    tc, tv = t[rows, c], t[rows, 1 - c]
    phi_v = phi[rows, 1 - c]
    voter_ticks = np.floor((tc - phi_v) / h) + 1  # ticks the voter counted in (0, tc]
    granted = voter_ticks >= k
    # split vote: both candidates pick a fresh timeout; the first to fire wins the next term
    r2 = rng.integers(k, 2 * k, (draws, 2))
    again = np.minimum(tc + r2[:, 0] * h, tv + r2[:, 1] * h)
    elected = np.where(granted, tc, again)
    return elected - u + overhead_ms


def markdown_table(summary: pd.DataFrame) -> str:
    """The summary as a Markdown table (what data/etcd/README.md and the docs show)."""
    head = ("| heartbeat / election (ms) | trials | min | median | p90 | max | mean "
            "| resolution | term +2 or more |\n|---|---|---|---|---|---|---|---|---|\n")
    rows = [
        f"| {r.heartbeat_ms} / {r.election_ms} | {r.trials} | {r.min_ms:.0f} | {r.median_ms:.0f} "
        f"| {r.p90_ms:.0f} | {r.max_ms:.0f} | {r.mean_ms:.0f} | {r.resolution_ms:.1f} | {r.term_jumps_gt1} |"
        for r in summary.itertuples()
    ]
    return head + "\n".join(rows) + "\n"


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:  # pragma: no cover
        pass
    try:
        info["os"] = dict(
            line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line
        ).get("PRETTY_NAME", "").strip('"')
    except OSError:  # pragma: no cover
        pass
    return info


# --------------------------------------------------------------------------- CLI


def _version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


def _parse_configs(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        hb, el = part.strip().split("/")
        out.append((int(hb), int(el)))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m meshsim.experiments.etcd_real", description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=30, help="leader kills per configuration (default 30)")
    p.add_argument("--out", type=Path, default=Path("data/etcd/failover.csv"),
                   help="CSV to write; a .json with etcd version, machine and date goes beside it")
    p.add_argument("--configs", default=",".join(f"{h}/{e}" for h, e in CONFIGS),
                   help="heartbeat/election pairs in ms (default: 50/500,100/1000)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--poll-ms", type=float, default=DEFAULT_POLL_MS, help="status poll interval (default 5)")
    p.add_argument("--base-dir", type=Path, default=None, help="where the temporary data dirs go")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)

    binary = find_etcd()
    if binary is None:
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    version = etcd_version(binary)
    started = time.time()
    load_before = list(os.getloadavg())
    frames = []
    for k, (hb, el) in enumerate(_parse_configs(args.configs)):
        t0 = time.time()

        def show(row: dict[str, Any]) -> None:
            if not args.quiet:
                print(f"  {row['config']:>9} trial {row['trial']:3d}: {row['failover_ms']:8.1f} ms "
                      f"(log {row['failover_log_ms']:7.1f}) {row['killed']} -> {row['new_leader'] or '-'} "
                      f"term {row['term_before']} -> {row['term_after']}", flush=True)

        df = failover_trials(hb, el, args.trials, seed=args.seed + k, base_dir=args.base_dir,
                             poll_ms=args.poll_ms, progress=show)
        frames.append(df)
        print(f"{hb}/{el} ms: {args.trials} trials in {time.time() - t0:.0f} s", flush=True)
    data = pd.concat(frames, ignore_index=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    data.to_csv(args.out, index=False)
    summary = summarize(data)
    meta = {
        "etcd_version": version,
        "etcd_binary": str(binary),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "duration_s": round(time.time() - started, 1),
        "trials_per_config": args.trials,
        "configs": [{"heartbeat_ms": h, "election_ms": e} for h, e in _parse_configs(args.configs)],
        "seed": args.seed,
        "poll_ms": args.poll_ms,
        "members": 3,
        "pre_vote": _version_tuple(version) >= (3, 5),  # the --pre-vote default; this script does not set it
        "check_quorum": True,  # always on in etcd
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
