"""A control panel for a classroom Raft cluster in JupyterLab (ipywidgets + the SVG of :mod:`meshsim.teach.svg`).

Every button calls the same method a script would (``deliver``, ``drop``, ``deliver_all``, ``advance``,
``run``, ``timeout``, ``crash``, ``restart``, ``partition``, ``heal``, ``request``, ``rewind``), then the
picture, the table of messages in flight (one Deliver and one Drop button each), the servers' table and
the list of events are redrawn.  A violation of a safety property appears in red at the top.  The
Play button moves the clock by the speed slider's milliseconds at each tick, with the network on
(``run``: messages arrive after the latency) or off (``advance``: only timers fire).

>>> from meshsim.teach import cluster
>>> w = ClassroomWidget(cluster(3))
>>> w.server.value = "s2"; w.timeout_button.click()
>>> sorted(w.message_buttons), w.cluster.state()["role"].tolist()
([1, 2], ['follower', 'candidate', 'follower'])
>>> w.deliver_all_button.click(); w.cluster.leader()
's2'
"""

from __future__ import annotations

from html import escape
from typing import Any, Callable

import ipywidgets as W

from .classroom import Livelock, RaftClassroom
from .svg import VIOLATION_COLOR

__all__ = ["ClassroomWidget", "show"]

#: at most this many messages get their own row of buttons (the rest are counted)
MAX_MESSAGE_ROWS = 40


class ClassroomWidget(W.VBox):
    """The panel (a VBox); ``cluster`` is the :class:`~meshsim.teach.classroom.RaftClassroom` it drives."""

    def __init__(self, cluster: RaftClassroom, svg_width: int = 720):
        self.cluster = cluster
        self.svg_width = svg_width
        servers = list(cluster.servers)
        lay = W.Layout(width="auto")
        self.picture = W.HTML()
        self.alert = W.HTML()
        self.deliver_all_button = W.Button(description="deliver all", tooltip="deliver every message in flight "
                                           "and the replies they cause", layout=lay)
        self.advance_ms = W.BoundedFloatText(value=50.0, min=1.0, max=100_000.0, step=10.0, description="ms",
                                             layout=W.Layout(width="150px"))
        self.advance_button = W.Button(description="advance", tooltip="move the clock: timers fire, no message "
                                       "moves", layout=lay)
        self.run_button = W.Button(description="run (network on)", tooltip="move the clock: messages arrive "
                                   "after the latency, timers fire", layout=lay)
        self.server = W.Dropdown(options=servers, value=servers[0], description="server",
                                 layout=W.Layout(width="180px"))
        self.timeout_button = W.Button(description="time out", tooltip="fire its election timer now", layout=lay)
        self.crash_button = W.Button(description="crash", layout=lay)
        self.restart_button = W.Button(description="restart", tooltip="from its persisted term, vote and log",
                                       layout=lay)
        self.side = W.SelectMultiple(options=servers, rows=min(len(servers), 7), description="cut off",
                                     layout=W.Layout(width="180px"))
        self.partition_button = W.Button(description="partition", tooltip="the selected servers | the rest",
                                         layout=lay)
        self.heal_button = W.Button(description="heal", layout=lay)
        self.request_text = W.Text(value="x", description="request", layout=W.Layout(width="180px"))
        self.request_button = W.Button(description="send to leader", layout=lay)
        self.step_back_button = W.Button(description="step back", tooltip="undo the last action", layout=lay,
                                         button_style="warning")
        self.play = W.Play(value=0, min=0, max=10**9, step=1, interval=400, description="play")
        self.speed = W.IntSlider(value=20, min=1, max=200, step=1, description="ms/tick",
                                 layout=W.Layout(width="260px"))
        self.network = W.Checkbox(value=True, description="network delivers", indent=False,
                                  layout=W.Layout(width="150px"))
        self.message_box = W.VBox()
        self.message_buttons: dict[int, tuple[W.Button, W.Button]] = {}
        self.table = W.HTML()
        self.events = W.HTML()
        self.deliver_all_button.on_click(lambda _b: self._do(self.cluster.deliver_all))
        self.advance_button.on_click(lambda _b: self._do(lambda: self.cluster.advance(self.advance_ms.value)))
        self.run_button.on_click(lambda _b: self._do(lambda: self.cluster.run(self.advance_ms.value)))
        self.timeout_button.on_click(lambda _b: self._do(lambda: self.cluster.timeout(self.server.value)))
        self.crash_button.on_click(lambda _b: self._do(lambda: self.cluster.crash(self.server.value)))
        self.restart_button.on_click(lambda _b: self._do(lambda: self.cluster.restart(self.server.value)))
        self.partition_button.on_click(lambda _b: self._do(self._partition))
        self.heal_button.on_click(lambda _b: self._do(self.cluster.heal))
        self.request_button.on_click(lambda _b: self._do(lambda: self.cluster.request(self.request_text.value)))
        self.step_back_button.on_click(lambda _b: self._do(self.cluster.rewind))
        self.play.observe(self._tick, names="value")
        controls = W.VBox([
            W.HBox([self.deliver_all_button, self.advance_ms, self.advance_button, self.run_button,
                    self.step_back_button]),
            W.HBox([self.server, self.timeout_button, self.crash_button, self.restart_button]),
            W.HBox([self.side, self.partition_button, self.heal_button]),
            W.HBox([self.request_text, self.request_button]),
            W.HBox([self.play, self.speed, self.network]),
        ])
        super().__init__([self.alert, self.picture, controls,
                          W.HTML("<b>messages in flight</b>"), self.message_box,
                          W.HTML("<b>servers</b>"), self.table, W.HTML("<b>events</b>"), self.events])
        self._error = ""
        self.refresh()

    # ------------------------------------------------------------------ actions
    def _partition(self) -> None:
        cut = set(self.side.value)
        if not cut or len(cut) == len(self.cluster.servers):
            raise ValueError("select the servers to cut off (some, not all)")
        rest = [s for s in self.cluster.servers if s not in cut]
        self.cluster.partition(cut, rest)

    def _tick(self, change: dict) -> None:
        if change.get("new") == change.get("old"):
            return
        ms = float(self.speed.value)
        self._do(lambda: self.cluster.run(ms) if self.network.value else self.cluster.advance(ms))

    def _do(self, fn: Callable[[], Any]) -> None:
        self._error = ""
        try:
            fn()
        except (ValueError, Livelock) as exc:
            self._error = str(exc)
        self.refresh()

    def _message_row(self, v: Any) -> W.HBox:
        label = W.HTML(f"<code>#{v.id}</code> {escape(str(v.src))} → {escape(str(v.dst))} "
                       f"<b>{escape(v.type)}</b> term {v.term}: {escape(v.detail)}"
                       + ("" if v.deliverable else " <i>(will be lost)</i>"))
        deliver = W.Button(description="deliver", layout=W.Layout(width="80px"))
        drop = W.Button(description="drop", layout=W.Layout(width="60px"))
        deliver.on_click(lambda _b, i=v.id: self._do(lambda: self.cluster.deliver(i)))
        drop.on_click(lambda _b, i=v.id: self._do(lambda: self.cluster.drop(i)))
        self.message_buttons[v.id] = (deliver, drop)
        return W.HBox([deliver, drop, label])

    # ------------------------------------------------------------------ drawing
    def refresh(self) -> None:
        """Redraw everything from the cluster (call it after changing the cluster from code)."""
        c = self.cluster
        self.picture.value = c.svg(self.svg_width)
        parts = []
        if c.violations:
            items = "".join(f"<li>{escape(str(v))}</li>" for v in c.violations)
            parts.append(f'<div style="color:{VIOLATION_COLOR};font-weight:bold">SAFETY VIOLATION'
                         f'{"S" if len(c.violations) > 1 else ""}:<ul>{items}</ul></div>')
        if self._error:
            parts.append(f'<div style="color:#b35900">{escape(self._error)}</div>')
        self.alert.value = "".join(parts)
        views = c.in_flight()
        self.message_buttons = {}
        rows = [self._message_row(v) for v in views[:MAX_MESSAGE_ROWS]]
        if len(views) > MAX_MESSAGE_ROWS:
            rows.append(W.HTML(f"… and {len(views) - MAX_MESSAGE_ROWS} more (cluster.messages())"))
        if not views:
            rows.append(W.HTML("<i>none</i>"))
        self.message_box.children = rows
        self.table.value = c.state().to_html(index=False, na_rep="", float_format=lambda x: f"{x:g}")
        ev = c.events().tail(8)
        self.events.value = "<br>".join(
            escape(f"{r.time_ms:g} ms  {'' if r.server is None else r.server}: {r.event}") for r in ev.itertuples())
        self.step_back_button.disabled = not c.rewindable


def show(cluster: RaftClassroom) -> ClassroomWidget:
    """Display the control panel of ``cluster`` in the notebook and return it."""
    from IPython.display import display

    w = ClassroomWidget(cluster)
    display(w)
    return w
