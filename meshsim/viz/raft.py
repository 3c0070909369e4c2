"""Raft timelines: one row per server, its role as coloured bands, messages as arrows between rows.

The idea is RaftScope's (a picture of who is leader, who campaigns and what
travels between servers), laid out on a time axis so a whole failover fits
in one figure.  :func:`raft_frames` gives the data as DataFrames and
:func:`raft_timeline` draws it.  ``source`` is a :class:`~meshsim.registry.raft_shell.RaftCluster`,
a :class:`~meshsim.registry.catalog.Registry`, the registry component of a
run, or a :class:`~meshsim.result.Result` of a scenario with a ``registry:`` section.

Roles, crashes, commits and leader changes are always recorded.  Messages
are recorded only when asked, before the window of interest is run:

- a cluster or registry you build: ``cluster.record_messages(start_ms, end_ms)``
  (``registry.cluster.record_messages(...)``);
- a scenario: the key ``registry.record_messages: {from: 30s, until: 33s}``.

>>> from meshsim.core.raft import RaftConfig
>>> from meshsim.registry.raft_shell import RaftCluster, make_network
>>> from meshsim.rng import RandomStreams
>>> from meshsim.sim.kernel import Kernel
>>> k, streams = Kernel(), RandomStreams(3)
>>> hosts = [f"s{i}" for i in range(5)]
>>> cluster = RaftCluster(k, make_network(k, hosts, latency={"dist": "uniform", "low": 5, "high": 15},
...                       streams=streams), hosts, RaftConfig.profile("paper"), streams, disk_delay=1.0)
>>> log = cluster.record_messages(start_ms=1_000, end_ms=3_000)
>>> cluster.start(); cluster.run(1_000)
>>> old = cluster.leader()
>>> _ = cluster.at(1_500, cluster.crash, old); _ = cluster.at(2_500, cluster.restart, old)
>>> cluster.run(2_000)
>>> f = raft_frames(cluster, start_ms=1_000, end_ms=3_000)
>>> sorted(f)
['commits', 'leaders', 'messages', 'roles', 'votes']
>>> mine = f["roles"].query("server == @old")
>>> mine[["role", "term"]].values.tolist()  # back as a follower of term 1 until it hears of term 2
[['leader', 1], ['crashed', 1], ['follower', 1], ['follower', 2]]
>>> mine[mine.role == "crashed"][["start_ms", "end_ms"]].values.tolist()
[[1500.0, 2500.0]]
>>> f["leaders"]["term"].tolist()
[2]
>>> fig = raft_timeline(cluster, start_ms=1_400, end_ms=2_000)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .style import PALETTE, ROLE_COLORS, new_figure

__all__ = ["MESSAGE_STYLES", "cluster_of", "raft_frames", "raft_timeline"]

ROLE_COLUMNS = ["server", "start_ms", "end_ms", "role", "term"]
MESSAGE_COLUMNS = ["send_ms", "arrive_ms", "src", "dst", "kind", "term", "entries", "ok", "delivered", "fate"]
VOTE_COLUMNS = ["time_ms", "voter", "candidate", "term", "granted", "pre_vote", "delivered"]
COMMIT_COLUMNS = ["time_ms", "server", "index", "term", "kind"]
LEADER_COLUMNS = ["time_ms", "leader", "term"]

#: the core's role names -> the names (and ROLE_COLORS keys) of the timeline
_ROLE = {"follower": "follower", "precandidate": "pre_candidate", "candidate": "candidate", "leader": "leader"}

#: how each message kind is drawn: colour, line width, line style, legend label
MESSAGE_STYLES: dict[str, dict[str, Any]] = {
    "heartbeat": {"color": "#888888", "lw": 0.6, "ls": (0, (2, 2)), "label": "heartbeat (no entries)"},
    "AppendEntries": {"color": PALETTE[5], "lw": 1.4, "ls": "-", "label": "AppendEntries with entries"},
    "AppendEntriesReply": {"color": "#BBBBBB", "lw": 0.6, "ls": "-", "label": "append reply"},
    "RequestVote": {"color": PALETTE[1], "lw": 1.2, "ls": "-", "label": "RequestVote"},
    "PreVote": {"color": PALETTE[4], "lw": 1.2, "ls": "-", "label": "PreVote"},
    "vote_granted": {"color": PALETTE[3], "lw": 1.2, "ls": "-", "label": "vote granted"},
    "vote_refused": {"color": PALETTE[6], "lw": 1.0, "ls": (0, (1, 1)), "label": "vote refused"},
}


def cluster_of(source: Any) -> Any:
    """The :class:`RaftCluster` behind a cluster, registry, registry component or Result."""
    if hasattr(source, "leader_changes") and hasattr(source, "events") and hasattr(source, "servers"):
        return source
    if hasattr(source, "component") and hasattr(source, "summary"):  # a Result
        try:
            source = source.component("registry")
        except KeyError as e:
            raise ValueError("this run has no Raft cluster: the scenario needs a registry: section") from e
    if hasattr(source, "registry") and hasattr(source.registry, "cluster"):  # the registry component
        source = source.registry
    if hasattr(source, "cluster") and hasattr(source.cluster, "leader_changes"):  # a Registry
        return source.cluster
    raise TypeError(f"no Raft cluster in a {type(source).__name__} (give a RaftCluster, Registry or Result)")


def _window(cluster: Any, start_ms: float | None, end_ms: float | None) -> tuple[float, float]:
    times = cluster.events["time"]
    t0 = cluster._started_at if cluster._started_at is not None else (min(times) if times else 0.0)
    now = cluster.kernel.now
    lo = t0 if start_ms is None else max(float(start_ms), t0)
    hi = now if end_ms is None else min(float(end_ms), now)
    if hi < lo:
        raise ValueError(f"empty window: start_ms {lo} is after end_ms {hi} (the run reached {now} ms)")
    return lo, hi


def _roles(cluster: Any, t0: float, now: float, lo: float, hi: float) -> pd.DataFrame:
    """Each server's (start, end, role, term) intervals tiling [lo, hi]: a new band at every role or term change."""
    ev = cluster.events
    tc = getattr(cluster, "terms", None) or {"time": [], "server": [], "term": []}
    # (time, order, role or None for "same role", term); at equal times term changes go first
    per: dict[str, list[tuple]] = {s: [(t0, -1, "crashed", 0)] for s in cluster.servers}
    for t, s, term in zip(tc["time"], tc["server"], tc["term"]):
        if s in per:
            per[s].append((float(t), 0, None, int(term)))
    for t, s, e, term in zip(ev["time"], ev["server"], ev["event"], ev["term"]):
        if s is None or s not in per:
            continue
        if e in ("start", "restart"):
            role = "follower"
        elif e == "crash":
            role = "crashed"
        elif e in _ROLE:
            role = _ROLE[e]
        else:
            continue
        per[s].append((float(t), 1, role, int(term) if term is not None else 0))
    rows: list[list] = []
    for s, changes in per.items():
        changes.sort(key=lambda x: (x[0], x[1]))  # stable: each list keeps its own order at equal times
        states = []
        role = "crashed"
        for t, _, r, term in changes:
            if r is None and role == "crashed":
                continue  # a term seen while down (cannot happen, but keep the band "crashed")
            role = role if r is None else r
            states.append((t, role, term))
        for (a, role, term), nxt in zip(states, states[1:] + [(now, None, None)]):
            a, b = max(a, lo), min(nxt[0], hi)
            if b <= a:
                continue  # zero length (e.g. a restart's crash) or outside the window
            if rows and rows[-1][0] == s and rows[-1][3] == role and rows[-1][4] == term and rows[-1][2] == a:
                rows[-1][2] = b
            else:
                rows.append([s, a, b, role, term])
    return pd.DataFrame(rows, columns=ROLE_COLUMNS)


def _in(df: pd.DataFrame, col: str, lo: float, hi: float) -> pd.DataFrame:
    return df[(df[col] >= lo) & (df[col] <= hi)].reset_index(drop=True)


def raft_frames(source: Any, start_ms: float | None = None, end_ms: float | None = None) -> dict[str, pd.DataFrame]:
    """The data of a Raft timeline, as DataFrames, over ``[start_ms, end_ms]`` (default: the whole run).

    - ``roles``: server, start_ms, end_ms, role (follower, pre_candidate, candidate,
      leader, crashed), term (at the band's start); per server the bands tile the window;
    - ``messages``: send_ms, arrive_ms (NaN if lost), src, dst, kind (heartbeat,
      AppendEntries, AppendEntriesReply, RequestVote, PreVote, RequestVoteReply,
      PreVoteReply), term, entries, ok, delivered, fate, for messages sent in
      the window (empty unless recorded: see the module doc);
    - ``votes``: the vote replies among them: time_ms, voter, candidate, term, granted, pre_vote, delivered;
    - ``commits``: time_ms, server, index, term, kind: entries applied on each server;
    - ``leaders``: time_ms, leader, term: a server became leader.
    """
    c = cluster_of(source)
    lo, hi = _window(c, start_ms, end_ms)
    t0, _ = _window(c, None, None)
    roles = _roles(c, t0, c.kernel.now, lo, hi)
    log = c.message_log
    msgs = log.frame() if log is not None else pd.DataFrame(columns=MESSAGE_COLUMNS)
    msgs = _in(msgs, "send_ms", lo, hi)
    v = msgs[msgs["kind"].isin(["RequestVoteReply", "PreVoteReply"])]
    votes = pd.DataFrame({"time_ms": v["send_ms"], "voter": v["src"], "candidate": v["dst"], "term": v["term"],
                          "granted": v["ok"].astype(bool), "pre_vote": v["kind"] == "PreVoteReply",
                          "delivered": v["delivered"]}, columns=VOTE_COLUMNS).reset_index(drop=True)
    commits = pd.DataFrame(c.commits).rename(columns={"time": "time_ms"}).reindex(columns=COMMIT_COLUMNS)
    leaders = pd.DataFrame(c.leader_changes).rename(columns={"time": "time_ms"}).reindex(columns=LEADER_COLUMNS)
    return {"roles": roles, "messages": msgs, "votes": votes,
            "commits": _in(commits, "time_ms", lo, hi), "leaders": _in(leaders, "time_ms", lo, hi)}


def _style_key(kind: str, ok: Any) -> str:
    if kind in ("RequestVoteReply", "PreVoteReply"):
        return "vote_granted" if ok else "vote_refused"
    return kind if kind in MESSAGE_STYLES else "AppendEntriesReply"


def raft_timeline(source: Any, start_ms: float | None = None, end_ms: float | None = None,
                  messages: bool = True, ax: Any = None, max_messages: int = 3000):
    """Draw the Raft timeline of ``source`` (see :func:`raft_frames`); returns the Figure.

    One row per server (the first at the top): its role as coloured bands
    (ROLE_COLORS) with the term written on bands wide enough to hold it;
    commits as ticks on the row's upper edge; a dotted line and a star where a
    server became leader; with ``messages``, one arrow per recorded message
    that arrived, from (send time, sender) to (arrival time, receiver),
    styled by kind (:data:`MESSAGE_STYLES`), and a cross on the sender's row
    for each one the network dropped (lost, partitioned; not those still in flight at the end).  At most ``max_messages`` arrows are drawn
    (the earliest ones); artists carry gids (``raft-band``, ``raft-message``,
    ``raft-lost``, ``raft-commits``, ``raft-leader``) for tests and tools.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch, Patch

    c = cluster_of(source)
    f = raft_frames(c, start_ms, end_ms)
    lo, hi = _window(c, start_ms, end_ms)
    servers = list(c.servers)
    y = {s: len(servers) - 1 - i for i, s in enumerate(servers)}
    half = 0.3
    if ax is None:
        fig, ax = new_figure(figsize=(11, 2.2 + 0.5 * len(servers)))
    else:
        fig = ax.figure
    span = max(hi - lo, 1e-9)

    roles = f["roles"]
    for s in servers:
        r = roles[roles["server"] == s]
        bars = ax.broken_barh(list(zip(r["start_ms"], r["end_ms"] - r["start_ms"])), (y[s] - half, 2 * half),
                              facecolors=[ROLE_COLORS[x] for x in r["role"]], edgecolor="white", linewidth=0.5,
                              zorder=1)
        bars.set_gid(f"raft-band:{s}")
        for a, b, role, term in zip(r["start_ms"], r["end_ms"], r["role"], r["term"]):
            if (b - a) / span >= 0.04:
                text = "down" if role == "crashed" else f"T{term}"
                ax.text((a + b) / 2, y[s], text, ha="center", va="center", fontsize=7, zorder=4,
                        color="white" if role in ("crashed", "leader") else "black")

    com = f["commits"]
    for s in servers:
        t = com.loc[com["server"] == s, "time_ms"].to_numpy(dtype=float)
        if t.size:
            (ln,) = ax.plot(t, np.full(t.size, y[s] + half), ls="none", marker="|", ms=6, color=PALETTE[0],
                            zorder=5)
            ln.set_gid("raft-commits")

    for t, lead, term in zip(f["leaders"]["time_ms"], f["leaders"]["leader"], f["leaders"]["term"]):
        ax.axvline(t, color=ROLE_COLORS["leader"], ls=":", lw=1.0, zorder=2, gid="raft-leader")
        if lead in y:
            ax.plot([t], [y[lead]], marker="*", ms=10, color=PALETTE[4], markeredgecolor=PALETTE[0], zorder=6)
        right = t > lo + 0.75 * span
        ax.text(t, len(servers) - 0.55, f" {lead} leads T{term} ", fontsize=7, va="bottom",
                ha="right" if right else "left", color=ROLE_COLORS["leader"], clip_on=True)

    msg = f["messages"]
    kinds_drawn: list[str] = []
    note = ""
    if messages:
        if c.message_log is None:
            note = "  (messages not recorded: cluster.record_messages() before the run)"
        arrived = msg[np.isfinite(msg["arrive_ms"].to_numpy(dtype=float))] if len(msg) else msg
        if len(arrived) > max_messages:
            note = f"  (first {max_messages} of {len(arrived)} messages drawn)"
            arrived = arrived.iloc[:max_messages]
        for a, b, src, dst, kind, ok in zip(arrived["send_ms"], arrived["arrive_ms"], arrived["src"],
                                            arrived["dst"], arrived["kind"], arrived["ok"]):
            key = _style_key(kind, ok)
            st = MESSAGE_STYLES[key]
            if key not in kinds_drawn:
                kinds_drawn.append(key)
            arrow = FancyArrowPatch((a, y[src]), (b, y[dst]), arrowstyle="-|>", mutation_scale=7,
                                    color=st["color"], lw=st["lw"], ls=st["ls"], shrinkA=0, shrinkB=0, zorder=3,
                                    gid="raft-message")
            ax.add_patch(arrow)
        lost = msg[~np.isfinite(msg["arrive_ms"].to_numpy(dtype=float)) & (msg["fate"] != "in_flight")] \
            if len(msg) else msg
        if len(lost):
            (ln,) = ax.plot(lost["send_ms"].to_numpy(dtype=float), [y[s] for s in lost["src"]], ls="none",
                            marker="x", ms=5, color=PALETTE[6], zorder=5)
            ln.set_gid("raft-lost")

    ax.set_xlim(lo, hi)
    ax.set_ylim(-0.6, len(servers) - 0.2)
    ax.set_yticks([y[s] for s in servers], servers)
    ax.grid(axis="y", visible=False)
    ax.set_xlabel("simulated time (ms)")
    ax.set_title(f"{c.name}: roles, messages, commits{note}", fontsize=10)

    handles = [Patch(facecolor=ROLE_COLORS[r], label=r.replace("_", "-")) for r in ROLE_COLORS]
    handles += [Line2D([], [], color=MESSAGE_STYLES[k]["color"], lw=max(MESSAGE_STYLES[k]["lw"], 1.0),
                       ls=MESSAGE_STYLES[k]["ls"], label=MESSAGE_STYLES[k]["label"]) for k in MESSAGE_STYLES
                if k in kinds_drawn]
    if len(com):
        handles.append(Line2D([], [], ls="none", marker="|", color=PALETTE[0], label="entry applied"))
    if len(f["leaders"]):
        handles.append(Line2D([], [], ls=":", marker="*", color=ROLE_COLORS["leader"],
                              markerfacecolor=PALETTE[4], label="new leader"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=5, fontsize=7)
    fig.tight_layout()
    return fig
