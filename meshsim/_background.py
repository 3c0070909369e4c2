"""A piece of work done by a forked child while this process goes on (Linux), or at once elsewhere.

The command line writes a run's requests table this way.  Before the run it
:func:`warm_up`\\ s a child, which imports pyarrow on the second core while the
simulation runs; after the run :func:`start` sends it the table's columns and
the child writes the file while this process computes the summary and writes
summary.json.  Without a warmed-up child, :func:`start` forks one there and
then (it shares the columns, copy-on-write).  The files are the same as when
written one after the other; only the wall time is shorter.

A child runs nothing of this process's at exit (``os._exit``), dies with it
(Linux's parent-death signal), and reports what went wrong, if anything,
through a pipe: :meth:`Job.wait` raises it as an :class:`OSError` (a file
that could not be written) or a :class:`BackgroundError` (anything else).

>>> start(len, "abc").wait()
>>> start(open, "/nonexistent/dir/file", "w").wait()
Traceback (most recent call last):
...
OSError: [Errno 2] No such file or directory: '/nonexistent/dir/file'
"""

from __future__ import annotations

import os
import pickle
import sys
import threading
from collections.abc import Callable
from typing import Any

#: whether work can go to a forked child here (Linux; elsewhere :func:`start` does it at once)
FORKS: bool = sys.platform.startswith("linux") and hasattr(os, "fork")


class BackgroundError(RuntimeError):
    """The background work failed with something other than an OSError (its type and message)."""


class Job:
    """Work started by :func:`start`; :meth:`wait` for it before using what it writes."""

    def __init__(self, pid: int | None, report: int | None, error: BaseException | None = None,
                 sender: threading.Thread | None = None):
        self._pid, self._report, self._error, self._sender = pid, report, error, sender

    def wait(self) -> None:
        """Wait for the work to end; raise what it failed with (OSError or BackgroundError)."""
        if self._sender is not None:
            self._sender.join()
            self._sender = None
        if self._pid is not None:
            with os.fdopen(self._report, "rb") as f:
                report = f.read().decode("utf-8", "replace")
            _, status = os.waitpid(self._pid, 0)
            self._pid = None
            if os.WIFSIGNALED(status):
                self._error = BackgroundError(f"the background writer was killed by signal {os.WTERMSIG(status)}")
            elif os.WEXITSTATUS(status) != 0 or report:
                kind, _, message = report.partition("\n")
                self._error = (OSError(message) if kind == "OSError"
                               else BackgroundError(message or f"the background writer exited with status "
                                                               f"{os.WEXITSTATUS(status)}"))
        if self._error is not None:
            error, self._error = self._error, None
            raise error


#: the warmed-up child, waiting for its work: (pid, the pipe its work goes down, the pipe its report comes up)
_warm: tuple[int, int, int] | None = None


def warm_up(setup: Callable[[], object]) -> None:
    """Fork, now, the child the next :func:`start` hands its work to; it runs ``setup()`` (imports) meanwhile.

    For a program that knows early what it will write (the command line); the child ends by itself if no work
    comes (this process exits, or calls :func:`warm_up` again).  Elsewhere than Linux this does nothing.
    """
    global _warm
    if not FORKS:
        return
    _discard_warm()
    task_read, task_write = os.pipe()
    report_read, report_write = os.pipe()
    pid = _fork()
    if pid == 0:  # pragma: no cover - the child; its outcome is checked through the parent
        os.close(task_write)
        os.close(report_read)

        def work() -> None:
            setup()
            with os.fdopen(task_read, "rb") as f:
                task = f.read()
            if task:  # nothing at all: the parent went without sending work
                fn, args = pickle.loads(task)
                fn(*args)

        _child(work, report_write)
    os.close(task_read)
    os.close(report_write)
    _warm = (pid, task_write, report_read)


def start(work: Callable[..., object], *args: Any) -> Job:
    """Run ``work(*args)`` in a child (see the module doc) and return at once; without fork, run it now.

    A warmed-up child gets ``work`` and ``args`` pickled: ``work`` must be a function defined at a module's top
    level, ``args`` data.  A fresh fork needs neither.
    """
    global _warm
    if not FORKS:
        try:
            work(*args)
        except Exception as e:  # noqa: BLE001 - handed to wait(), as from a child
            return Job(None, None, e)
        return Job(None, None)
    if _warm is not None:
        try:
            task = pickle.dumps((work, args), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - not picklable (a lambda, say): a fresh fork below does it instead
            _discard_warm()
        else:
            pid, task_write, report_read = _warm
            _warm = None
            # a thread feeds the pipe (os.write lets go of the GIL while the child reads) and this one goes on
            sender = threading.Thread(target=_send, args=(task_write, task), name="meshsim-background-send")
            sender.start()
            return Job(pid, report_read, sender=sender)
    report_read, report_write = os.pipe()
    pid = _fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(report_read)
        _child(lambda: work(*args), report_write)
    os.close(report_write)
    return Job(pid, report_read)


def _send(fd: int, data: bytes) -> None:
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except BrokenPipeError:  # the child is gone already: its report says why
        pass


def _discard_warm() -> None:
    """Let a warmed-up child that got no work go (it reads the end of its pipe and exits)."""
    global _warm
    if _warm is not None:
        pid, task_write, report_read = _warm
        _warm = None
        os.close(task_write)
        os.close(report_read)
        os.waitpid(pid, 0)


def _fork() -> int:
    sys.stdout.flush()  # what is buffered now must not be written twice (the child never flushes, but be sure)
    sys.stderr.flush()
    return os.fork()


def _child(work: Callable[[], object], report: int) -> None:  # pragma: no cover - runs in the child
    """The child's whole life: ``work()``, what went wrong down ``report``, and out without any exit handlers."""
    code = 1
    try:
        from ._proc import die_with_parent

        die_with_parent()
        try:
            work()
            code = 0
        except OSError as e:
            os.write(report, f"OSError\n{e}".encode())
        except BaseException as e:  # noqa: BLE001 - everything goes back to the parent
            os.write(report, f"{type(e).__name__}\n{type(e).__name__}: {e}".encode())
    finally:
        os._exit(code)


__all__ = ["FORKS", "BackgroundError", "Job", "start", "warm_up"]
