"""A piece of work done by a forked child while this process goes on (Linux), or at once elsewhere.

The command line writes a run's requests table this way: the child has the
finished run's columns (the fork shares them, copy-on-write), imports pyarrow
and writes the file on the second core, while the parent computes the summary
and writes summary.json.  The files are the same as when written one after the
other; only the wall time is shorter.

The child runs nothing of the parent's at exit (``os._exit``) and tells the
parent what went wrong, if anything, through a pipe: :meth:`Job.wait` raises
it there as an :class:`OSError` (a file that could not be written) or a
:class:`BackgroundError` (anything else).

>>> job = start(lambda: None)
>>> job.wait()
>>> start(lambda: open("/nonexistent/dir/file", "w")).wait()
Traceback (most recent call last):
...
OSError: [Errno 2] No such file or directory: '/nonexistent/dir/file'
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

#: whether work can go to a forked child here (Linux; elsewhere :func:`start` does it at once)
FORKS: bool = sys.platform.startswith("linux") and hasattr(os, "fork")


class BackgroundError(RuntimeError):
    """The background work failed with something other than an OSError (its type and message)."""


class Job:
    """Work started by :func:`start`; :meth:`wait` for it before using what it writes."""

    def __init__(self, pid: int | None, pipe: int | None, error: BaseException | None = None):
        self._pid, self._pipe, self._error = pid, pipe, error

    def wait(self) -> None:
        """Wait for the work to end; raise what it failed with (OSError or BackgroundError)."""
        if self._pid is not None:
            with os.fdopen(self._pipe, "rb") as f:
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


def start(work: Callable[[], object]) -> Job:
    """Run ``work()`` in a forked child (see the module doc) and return at once; without fork, run it now."""
    if not FORKS:
        try:
            work()
        except Exception as e:  # noqa: BLE001 - handed to wait(), as from a child
            return Job(None, None, e)
        return Job(None, None)
    sys.stdout.flush()  # what is buffered now must not be written twice (the child never flushes, but be sure)
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; its outcome is checked through the parent
        code = 1
        try:
            os.close(read_end)
            try:
                work()
                code = 0
            except OSError as e:
                os.write(write_end, f"OSError\n{e}".encode())
            except BaseException as e:  # noqa: BLE001 - everything goes back to the parent
                os.write(write_end, f"{type(e).__name__}\n{type(e).__name__}: {e}".encode())
        finally:
            os._exit(code)
    os.close(write_end)
    return Job(pid, read_end)


__all__ = ["FORKS", "BackgroundError", "Job", "start"]
