"""A classroom cluster drawn as SVG: servers in a ring (after RaftScope), messages in flight, logs.

Plain SVG text made here (no plotting library), so it renders in JupyterLab through an
``ipywidgets.HTML`` or as a cell's output, and tests can read it.  Colours follow
:mod:`meshsim.viz.style`: servers by role (``ROLE_COLORS``), entries by term (``color_for``).

* each server is a disc coloured by its role, with its name, term and vote; the arc around it is its
  timer (full = the whole election timeout, or heartbeat interval, still to go);
* each message in flight is a numbered dot on the way from its sender to its receiver (the number is
  the id to ``deliver`` or ``drop``); a hollow grey dot will be lost (receiver down or cut off);
* the log panel shows each server's entries by term; a filled box is committed on that server;
* safety violations are listed in red at the bottom.

>>> from meshsim.teach import cluster
>>> c = cluster(3)
>>> c.timeout("s1")
>>> svg = draw(c)
>>> svg.startswith("<svg") and svg.count('class="server"') == 3 and svg.count('class="msg"') == 2
True
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

from ..core.raft import AppendEntriesResponse, RequestVote, RequestVoteResponse
from ..viz.style import PALETTE, ROLE_COLORS, color_for

__all__ = ["MESSAGE_COLORS", "draw", "role_color"]

#: message dots: vote requests like candidates, AppendEntries like leaders, replies green / red
MESSAGE_COLORS: dict[str, str] = {
    "RequestVote": ROLE_COLORS["candidate"],
    "granted": PALETTE[3],
    "refused": PALETTE[6],
    "AppendEntries": ROLE_COLORS["leader"],
    "ok": PALETTE[2],
    "lost": "#BBBBBB",
}

VIOLATION_COLOR = "#D00000"
_DARK = {ROLE_COLORS["leader"], ROLE_COLORS["crashed"]}


def role_color(role: str) -> str:
    """The house colour of a Raft role ("precandidate" is the style's "pre_candidate")."""
    return ROLE_COLORS.get("pre_candidate" if role == "precandidate" else role, ROLE_COLORS["follower"])


def _msg_color(v: Any) -> str:
    m = v.msg
    if not v.deliverable:
        return MESSAGE_COLORS["lost"]
    if isinstance(m, RequestVote):
        return MESSAGE_COLORS["RequestVote"]
    if isinstance(m, RequestVoteResponse):
        return MESSAGE_COLORS["granted" if m.granted else "refused"]
    if isinstance(m, AppendEntriesResponse):
        return MESSAGE_COLORS["ok" if m.success else "refused"]
    return MESSAGE_COLORS["AppendEntries"]


def _arc(cx: float, cy: float, r: float, frac: float) -> str:
    """An SVG path for a clockwise arc from 12 o'clock covering ``frac`` of the circle."""
    frac = min(max(frac, 0.0), 0.9999)
    a = 2 * math.pi * frac
    x0, y0 = cx, cy - r
    x1, y1 = cx + r * math.sin(a), cy - r * math.cos(a)
    large = 1 if frac > 0.5 else 0
    return f"M {x0:.1f} {y0:.1f} A {r:.1f} {r:.1f} 0 {large} 1 {x1:.1f} {y1:.1f}"


def draw(classroom: Any, width: int = 720) -> str:
    """The SVG text of ``classroom`` (a :class:`~meshsim.teach.classroom.RaftClassroom`) now."""
    servers = classroom.servers
    n = len(servers)
    state = classroom.state().set_index("server")
    ring_w = 360
    cx, cy, ring_r, node_r = ring_w / 2 + 10, 210, 120 if n <= 5 else 135, 28 if n <= 5 else 22
    row_h = 28
    log_x = ring_w + 20
    max_log = max((int(x) for x in state["last_index"]), default=0)
    box = max(12.0, min(24.0, (width - log_x - 40) / max(max_log, 1) - 2))
    height = max(400, 70 + n * row_h + 40)
    viol = classroom.violations
    height += 18 * min(len(viol), 4)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           '<defs><marker id="arr" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" '
           'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#999"/></marker></defs>',
           f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>']
    lead = classroom.leader()
    head = f"t = {classroom.now_ms:g} ms · leader: {lead if lead is not None else 'none'}"
    if lead is not None:
        head += f" (term {classroom.term(lead)})"
    head += f" · {len(classroom.in_flight())} message(s) in flight"
    out.append(f'<text class="header" x="10" y="18" font-weight="bold">{escape(head)}</text>')
    groups = classroom.groups()
    if groups:
        txt = "partition: " + " | ".join("{" + ", ".join(str(s) for s in servers if s in g) + "}" for g in groups)
        out.append(f'<text class="partition" x="10" y="36" fill="{PALETTE[6]}">{escape(txt)}</text>')
    pos = {}
    for i, s in enumerate(servers):
        ang = -math.pi / 2 + 2 * math.pi * i / n
        pos[s] = (cx + ring_r * math.cos(ang), cy + ring_r * math.sin(ang), ang)
    # messages: one line per sender -> receiver pair, a numbered dot per message
    pairs: dict[tuple, int] = {}
    for v in classroom.in_flight():
        if v.src not in pos or v.dst not in pos:
            continue
        x0, y0, _ = pos[v.src]
        x1, y1, _ = pos[v.dst]
        d = math.hypot(x1 - x0, y1 - y0) or 1.0
        ux, uy = (x1 - x0) / d, (y1 - y0) / d
        px, py = -uy * 5, ux * 5  # each direction on its own side of the line
        k = pairs.get((v.src, v.dst), 0)
        pairs[(v.src, v.dst)] = k + 1
        if k == 0:
            out.append(f'<line x1="{x0 + ux * node_r + px:.1f}" y1="{y0 + uy * node_r + py:.1f}" '
                       f'x2="{x1 - ux * (node_r + 2) + px:.1f}" y2="{y1 - uy * (node_r + 2) + py:.1f}" '
                       f'stroke="#999" stroke-width="1" marker-end="url(#arr)"/>')
        f = 0.3 + (0.14 * k) % 0.45
        mx, my = x0 + (x1 - x0) * f + px, y0 + (y1 - y0) * f + py
        col = _msg_color(v)
        fill = col if v.deliverable else "white"
        tcol = "white" if v.deliverable and col in (MESSAGE_COLORS["AppendEntries"], MESSAGE_COLORS["refused"]) \
            else "black"
        tip = escape(f"#{v.id} {v.src}->{v.dst} {v.type} term {v.term}: {v.detail}")
        out.append(f'<g class="msg" data-id="{v.id}"><title>{tip}</title>'
                   f'<circle cx="{mx:.1f}" cy="{my:.1f}" r="8" fill="{fill}" stroke="{col}" stroke-width="1.5"/>'
                   f'<text x="{mx:.1f}" y="{my + 3:.1f}" font-size="8" text-anchor="middle" fill="{tcol}">'
                   f'{v.id}</text></g>')
    # servers
    cfg = classroom.config
    for s in servers:
        x, y, ang = pos[s]
        row = state.loc[s]
        role = row["role"]
        col = role_color(role)
        tcol = "white" if col in _DARK else "black"
        out.append(f'<g class="server" data-server="{escape(str(s))}" data-role="{role}">')
        out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{node_r}" fill="{col}" stroke="black" stroke-width="1"/>')
        dl = row["deadline_ms"]
        if role != "crashed" and not (isinstance(dl, float) and math.isnan(dl)):
            span = cfg.heartbeat_interval_ms if role == "leader" else cfg.election_timeout_max_ms
            frac = (float(dl) - classroom.now_ms) / span
            if frac >= 0.999:
                out.append(f'<circle class="timer" cx="{x:.1f}" cy="{y:.1f}" r="{node_r + 5}" fill="none" '
                           f'stroke="{col}" stroke-width="3"/>')
            elif frac > 0:
                out.append(f'<path class="timer" d="{_arc(x, y, node_r + 5, frac)}" fill="none" stroke="{col}" '
                           f'stroke-width="3"/>')
        out.append(f'<text x="{x:.1f}" y="{y - 3:.1f}" text-anchor="middle" font-weight="bold" fill="{tcol}">'
                   f'{escape(str(s))}</text>')
        out.append(f'<text x="{x:.1f}" y="{y + 11:.1f}" text-anchor="middle" font-size="10" fill="{tcol}">'
                   f'T{int(row["term"])}</text>')
        lx, ly = x, y + node_r + 19
        vote = row["voted_for"]
        label = role if role != "crashed" else "crashed"
        if vote is not None:
            label += f", voted {vote}"
        out.append(f'<text x="{lx:.1f}" y="{ly:.1f}" text-anchor="middle" font-size="9" fill="#333">'
                   f'{escape(label)}</text>')
        out.append("</g>")
    # logs
    top = 60
    out.append(f'<text x="{log_x}" y="{top - 22}" font-size="11">logs: term of each entry; filled = committed on '
               f'that server</text>')
    for j in range(max_log):
        out.append(f'<text x="{log_x + 30 + j * (box + 2) + box / 2:.1f}" y="{top - 6}" font-size="9" '
                   f'text-anchor="middle" fill="#666">{j + 1}</text>')
    for i, s in enumerate(servers):
        y = top + i * row_h
        row = state.loc[s]
        commit = 0 if row["role"] == "crashed" else int(row["commit_index"])
        out.append(f'<g class="log" data-server="{escape(str(s))}">'
                   f'<text x="{log_x}" y="{y + box / 2 + 4:.1f}" font-weight="bold">{escape(str(s))}</text>')
        for j, e in enumerate(classroom.log(s)):
            col = color_for(e.term)
            done = j < commit
            x = log_x + 30 + j * (box + 2)
            out.append(f'<rect class="entry{" committed" if done else ""}" x="{x:.1f}" y="{y}" width="{box:.1f}" '
                       f'height="{box:.1f}" fill="{col if done else "white"}" stroke="{col}" stroke-width="2"/>'
                       f'<text x="{x + box / 2:.1f}" y="{y + box / 2 + 4:.1f}" font-size="10" text-anchor="middle">'
                       f'{e.term}</text>')
        out.append("</g>")
    # violations, never hidden
    y = height - 10 - 18 * (min(len(viol), 4) - 1) if viol else height
    for k, v in enumerate(viol[:3]):
        out.append(f'<text class="violation" x="10" y="{y + 18 * k:.0f}" fill="{VIOLATION_COLOR}" '
                   f'font-weight="bold">VIOLATION {escape(str(v))}</text>')
    if len(viol) > 3:
        out.append(f'<text class="violation" x="10" y="{y + 54:.0f}" fill="{VIOLATION_COLOR}">… and '
                   f'{len(viol) - 3} more (cluster.violations)</text>')
    out.append("</svg>")
    return "".join(out)
