"""Raft specified by golden transcripts (tests/testdata/raft/*.txt), run by meshsim.teach.transcript.

Each transcript is a list of commands with the exact output each must print; a test fails with a
unified diff.  ``MESHSIM_REWRITE=1 pytest tests/test_raft_transcripts.py`` (or ``python -m
meshsim.teach.transcript --rewrite tests/testdata/raft/``) regenerates the outputs: read the diff
before committing it, the outputs are the specification.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from meshsim.teach.transcript import Transcript, check_file, main, parse, rewrite, run_text

DATA = Path(__file__).parent / "testdata" / "raft"
FILES = sorted(DATA.glob("*.txt"))
REWRITE = os.environ.get("MESHSIM_REWRITE", "") not in ("", "0")


def test_every_behaviour_has_a_transcript():
    names = {p.stem for p in FILES}
    assert {"election", "split_vote", "prevote", "checkquorum", "figure8", "membership", "readindex"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_transcript(path: Path):
    if REWRITE:
        rewrite(path)
    text = path.read_text(encoding="utf-8")
    blocks, _ = parse(text)
    assert blocks[0].before and blocks[0].before[0].startswith("# "), "begin with comments saying what it shows"
    assert "section" in "\n".join(blocks[0].before), "name the paper/thesis section it illustrates"
    diff = check_file(path)
    assert diff is None, (f"{path.name} no longer holds (MESHSIM_REWRITE=1 regenerates it; read the diff "
                          f"first):\n{diff}")
    assert not any("SAFETY VIOLATION" in b.expected or b.expected.startswith("error:") for b in blocks)


def test_a_wrong_expectation_fails_with_a_readable_diff(tmp_path: Path):
    good = (DATA / "election.txt").read_text(encoding="utf-8")
    assert "1 becomes leader at term 1" in good
    bad = tmp_path / "election.txt"
    bad.write_text(good.replace("1 becomes leader at term 1", "2 becomes leader at term 1", 1), encoding="utf-8")
    diff = check_file(bad)
    assert diff is not None
    assert "-  2 becomes leader at term 1" in diff and "+  1 becomes leader at term 1" in diff
    assert main([str(bad)]) == 1 and main([str(DATA / "election.txt")]) == 0
    assert rewrite(bad) == [bad] and check_file(bad) is None  # --rewrite restores the truth
    assert bad.read_text(encoding="utf-8") == good


def test_outputs_are_exact_and_the_format_round_trips():
    text = "# c\n\nadd-nodes 3\n----\nwrong\n\nbogus 1\n----\nx\n"
    got = run_text(text)
    assert got.startswith("# c\n\nadd-nodes 3\n----\nprofile paper: heartbeat 75 ms")
    assert got.endswith("bogus 1\n----\nerror: unknown command 'bogus'; known: add-nodes, add-server, advance, "
                        "campaign, crash, deliver, drop, heal, partition, pending, propose, read-index, remove-server, "
                        "restart, stabilize, status, tick, timers\n")
    assert run_text(got) == got
    with pytest.raises(ValueError, match="must be followed by a line '----'"):
        parse("status\nok\n")


def test_votes_terms_and_commits_are_what_raft_says():
    """A few facts of the transcripts checked on the cluster itself, not through the printed text."""
    t = Transcript()
    t.run("add-nodes 5 profile=paper seed=3")
    t.run("campaign 4")
    t.run("stabilize")
    c = t.cluster
    assert c.leader() == 4 and {n.term for n in c.nodes.values()} == {1}
    assert all(n.voted_for == 4 for n in c.nodes.values())
    assert t.run("propose 4 x") == "4 appends 1/2:x"
    out = t.run("stabilize")
    assert out.count("commits 1/2:x") == 5 and [n.commit_index for n in c.nodes.values()] == [2] * 5
    assert t.run("campaign 4").startswith("error: a leader has no election timer")
    t.run("crash 1")
    t.run("crash 2")
    t.run("propose 4 y")
    out = t.run("stabilize")
    assert "(dropped: 1 is down)" in out and "4 commits 1/3:y" in out  # 4, 3, 5: still a majority
    t.run("crash 3")
    t.run("propose 4 z")
    assert t.run("pending").splitlines() == [f"4->{i} MsgApp term=1 prev=1/3 commit=3 entries=[1/4:z]"
                                             for i in (1, 2, 3, 5)]
    assert "4 commits" not in t.run("stabilize")  # 4 and 5 of 5: no majority
    assert t.run("pending") == "no messages in flight"
    assert t.run("partition 1 2 |").startswith("error: expected partition A B | C D")
    assert c.nodes[4].commit_index == 3
