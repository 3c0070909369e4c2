"""Writing the requests table in a forked child (meshsim._background, Result.save(background=True)):
the same files as written one after the other, and every failure of the child reported in the parent."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

import meshsim
from meshsim import _background
from meshsim import result as result_module

pytestmark = pytest.mark.skipif(not _background.FORKS, reason="no fork here: start() runs the work at once")


@pytest.fixture(scope="module")
def res() -> meshsim.Result:
    return meshsim.run(meshsim.example("tandem"), seed=5, overrides={"run.requests": 4000})


def test_the_files_are_the_same_bytes_as_written_in_turn(res: meshsim.Result, tmp_path: Path) -> None:
    fresh = meshsim.Result(res.record)  # no summary computed yet: the parent computes it while the child writes
    assert "summary" not in vars(fresh)
    inline = res.save(tmp_path / "inline")
    side = fresh.save(tmp_path / "side", background=True)
    assert sorted(inline) == sorted(side) == ["requests", "summary"]
    for key in inline:
        assert inline[key].read_bytes() == side[key].read_bytes(), key
    assert len(inline["requests"].read_bytes()) > 10_000


def test_an_os_error_in_the_child_is_raised_in_the_parent(res: meshsim.Result, tmp_path: Path) -> None:
    (tmp_path / "requests.parquet").mkdir()  # the table cannot be written there
    with pytest.raises(OSError, match="requests.parquet"):
        res.save(tmp_path, background=True)
    assert (tmp_path / "summary.json").exists()  # the parent's part is done all the same


def test_any_other_failure_in_the_child_is_a_background_error(res: meshsim.Result, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args):  # noqa: ANN002
        raise ValueError("no table today")

    monkeypatch.setattr(result_module, "write_requests_table", broken)  # the fork copies the patched module
    with pytest.raises(_background.BackgroundError, match="ValueError: no table today"):
        res.save(tmp_path, background=True)


def test_a_child_killed_by_a_signal_is_reported() -> None:
    job = _background.start(lambda: os.kill(os.getpid(), signal.SIGKILL))
    with pytest.raises(_background.BackgroundError, match="killed by signal 9"):
        job.wait()


def test_a_child_that_exits_by_itself_is_reported() -> None:
    job = _background.start(lambda: os._exit(3))
    with pytest.raises(_background.BackgroundError, match="exited with status 3"):
        job.wait()


def test_without_fork_the_work_is_done_at_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(_background, "FORKS", False)
    seen = []
    job = _background.start(lambda: seen.append(os.getpid()))
    assert seen == [os.getpid()]
    job.wait()
    job = _background.start(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        job.wait()


def test_the_parent_output_is_not_written_twice(tmp_path: Path) -> None:
    """What the parent had buffered before the fork appears once (the child leaves without flushing)."""
    import subprocess
    import sys

    program = ("import sys\n"
               "from meshsim import _background\n"
               "sys.stdout.write('before the fork\\n')\n"
               "_background.start(lambda: None).wait()\n"
               "print('after')\n")
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONUNBUFFERED="")).stdout
    assert out == "before the fork\nafter\n"


# -- a child warmed up before the work is known (the command line: it imports pyarrow during the run) --------


def _setup_marker(path: str) -> None:
    Path(path).write_text(str(os.getpid()))


def _write_pid(path: str, text: str) -> None:
    Path(path).write_text(f"{text} {os.getpid()}")


def test_a_warmed_up_child_does_the_work_it_is_sent(tmp_path: Path) -> None:
    marker, out = tmp_path / "setup", tmp_path / "out"
    _background.warm_up(lambda: _setup_marker(str(marker)))
    job = _background.start(_write_pid, str(out), "done by")
    job.wait()
    setup_pid = marker.read_text()
    assert out.read_text() == f"done by {setup_pid}" and int(setup_pid) != os.getpid()  # the same child did both


def test_the_requests_table_from_a_warmed_up_child_is_the_same_file(res: meshsim.Result, tmp_path: Path) -> None:
    inline = res.save(tmp_path / "inline")
    _background.warm_up(result_module.load_parquet_writer)
    side = meshsim.Result(res.record).save(tmp_path / "side", background=True)
    for key in inline:
        assert inline[key].read_bytes() == side[key].read_bytes(), key


def test_a_warmed_up_child_whose_setup_failed_reports_it(tmp_path: Path) -> None:
    def bad_setup():
        raise ImportError("no pyarrow here")

    _background.warm_up(bad_setup)
    big = "x" * 1_000_000  # more than a pipe holds: the send meets a closed pipe, quietly
    with pytest.raises(_background.BackgroundError, match="ImportError: no pyarrow here"):
        _background.start(_write_pid, str(tmp_path / "never"), big).wait()
    assert not (tmp_path / "never").exists()


def test_work_that_cannot_be_sent_goes_to_a_fresh_fork_and_an_unused_child_is_let_go(tmp_path: Path) -> None:
    _background.warm_up(lambda: None)
    pid = _background._warm[0]
    out = tmp_path / "out"
    _background.start(lambda: out.write_text("lambda ran")).wait()  # a lambda does not pickle
    assert out.read_text() == "lambda ran" and _background._warm is None
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # the warmed-up child ended and was reaped
    _background.warm_up(lambda: None)
    first = _background._warm[0]
    _background.warm_up(lambda: None)  # a second warm-up lets the first child go
    with pytest.raises(ChildProcessError):
        os.waitpid(first, os.WNOHANG)
    _background._discard_warm()
    assert _background._warm is None
