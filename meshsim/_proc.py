"""Child processes that never outlive the Python process that started them (Linux: PR_SET_PDEATHSIG).

Used by the sweep's pool workers and by the real-system experiments (etcd,
hashicorp/raft), whose servers must not be left running when a test or a
sweep is killed.

>>> callable(die_with_parent)
True
"""

from __future__ import annotations

import signal

try:  # Linux: prctl(PR_SET_PDEATHSIG) makes the kernel kill a child when its parent dies
    import ctypes

    _LIBC = ctypes.CDLL(None, use_errno=True)
    _LIBC.prctl  # noqa: B018 - fail here, not in the child, when there is no prctl
except (OSError, AttributeError):  # pragma: no cover - not Linux
    _LIBC = None

#: whether die_with_parent can do anything here (use it as preexec_fn only then)
AVAILABLE: bool = _LIBC is not None


def die_with_parent() -> None:  # pragma: no cover - runs in the child (between fork and exec, or in a pool worker)
    """Ask the kernel to send this process SIGKILL when its parent dies (a no-op where that is not possible)."""
    if _LIBC is not None:
        _LIBC.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
