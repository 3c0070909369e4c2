"""The command line: ``meshsim run`` and ``meshsim validate``.

Malformed input of any kind exits with status 2 and a short message on
stderr naming the problem, never a traceback.  Most tests call
:func:`meshsim.cli.main` in-process; a few run ``python -m meshsim`` for real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from meshsim.examples import SCENARIOS  # the repository's data/ links to meshsim/data
from meshsim.cli import main

ROOT = Path(__file__).resolve().parents[1]
THREE_TIER = str(SCENARIOS / "three_tier.yaml")
# small, fast runs of the three-tier example: 2000 requests, everything counted
SMALL = ["--set", "run.duration=null", "--set", "run.requests=2000", "--set", "metrics.warmup=0"]

SMALL_SCENARIO = {
    "name": "small",
    "run": {"requests": 300},
    "network": {"enabled": False},
    "services": {
        "web": {"workers": 4, "service_time": {"dist": "exponential", "mean": "2ms"}, "calls": ["cart"]},
        "cart": {"replicas": 2, "workers": 2, "service_time": {"dist": "exponential", "mean": "3ms"}},
    },
    "workloads": {"users": {"rate": "100/s", "target": "web"}},
}


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:  # argparse usage errors
        code = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def assert_clean_failure(code: int, out: str, err: str, *needles: str) -> None:
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err
    assert err.startswith("meshsim: ") or err.startswith("usage: "), err
    assert len(err) < 2000 and err.count("\n") <= 25, err
    for needle in needles:
        assert needle in err, (needle, err)


# -- validate --------------------------------------------------------------------


def test_validate_prints_utilisation(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "validate", THREE_TIER)
    assert code == 0, err
    assert err == ""
    lines = out.splitlines()
    assert lines[0] == f"{THREE_TIER}: ok — 3 services, 6 instances, 7 hosts, 1 workloads"
    # db: 500/s x 0.7 x 8ms / 8 workers = 0.35; frontend: 500/s x lognormal mean 2.54ms / 32 = 0.040
    assert lines[1].split() == ["frontend", "offered", "utilisation", "0.040"]
    assert lines[3].split() == ["db", "offered", "utilisation", "0.350"]
    assert [ln.split()[0] for ln in lines[1:]] == ["frontend", "api", "db"]


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.stem)
def test_validate_every_example(capsys: pytest.CaptureFixture[str], path: Path) -> None:
    code, out, err = cli(capsys, "validate", path)
    assert code == 0, err
    assert ": ok — " in out
    assert "offered utilisation" in out


def test_validate_with_set_and_unstable_warning(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "validate", SCENARIOS / "mmc.yaml", "--set", "workloads.arrivals.rate=60/s")
    assert code == 0
    assert "server" in out and "1.200" in out
    assert err == "meshsim: warning: services.server: offered utilisation 1.20 >= 1; its queue will grow without bound\n"


# -- malformed input: exit 2, one short message, no traceback ------------------------------

BAD_FILES = {
    "empty": ("", "is empty"),
    "comment-only": ("# nothing here\n", "is empty"),
    "not-yaml": ("services: [\n  a: : :\n", "is not valid YAML at line 2"),
    "tabs": ("run:\n\trequests: 5\n", "is not valid YAML"),
    "yaml-list": ("- run\n- services\n", "a scenario must be a mapping of keys (run, services, workloads, ...), got list"),
    "yaml-scalar": ("42\n", "got int"),
    "yaml-string": ("hello world\n", "got str"),
    "binary": (bytes(range(256)) * 4, "cannot be read"),
    "latin1": ("name: caf\xe9\n".encode("latin-1"), "cannot be read"),
    "python-tag": ("!!python/object/apply:os.system [echo hi]\n", "is not valid YAML"),
    "wrong-type": (yaml.safe_dump({**SMALL_SCENARIO, "services": {"web": {"replicas": "two", "service_time": 1}}}),
                   "services.web.replicas: must be an integer >= 1, got 'two'"),
    "unknown-key": (yaml.safe_dump({**SMALL_SCENARIO, "servces": {}}), "did you mean 'services'?"),
    "nested-unknown-key": (yaml.safe_dump({**SMALL_SCENARIO, "run": {"requets": 5}}),
                           "run.requets: unknown key; valid keys are duration, requests, drain, max_time, max_wall, "
                           "common_random_numbers "
                           "(did you mean 'requests'?)"),
    "bad-reference": (yaml.safe_dump({**SMALL_SCENARIO, "workloads": {"u": {"rate": 5, "target": "wbe"}}}),
                      "workloads.u.target: unknown service 'wbe' (did you mean 'web'?)"),
    "null-section": ("run:\nservices:\nworkloads:\n", "run: must be a mapping, got null"),
    "many-problems": (yaml.safe_dump({**SMALL_SCENARIO, "faults": [{"at": "x"}] * 100}), "more problems"),
    "huge-value": (yaml.safe_dump({**SMALL_SCENARIO, "seed": list(range(3000))}), "seed: must be an integer"),
}


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_malformed_files(capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str, kind: str) -> None:
    content, needle = BAD_FILES[kind]
    f = write(tmp_path / "s.yaml", content)
    code, out, err = cli(capsys, command, f)
    assert_clean_failure(code, out, err, needle)
    assert err.startswith("meshsim: invalid scenario:")
    assert out == ""


def test_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    for command in ("validate", "run"):
        code, out, err = cli(capsys, command, missing)
        assert_clean_failure(code, out, err)
        assert err.startswith(f"meshsim: invalid scenario: {missing}: no such file (looked in {tmp_path})")
        assert "meshsim.example" in err and err.count("\n") == 1


def test_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for command in ("validate", "run"):
        code, out, err = cli(capsys, command, tmp_path)
        assert_clean_failure(code, out, err)
        assert err == f"meshsim: invalid scenario: {tmp_path}: is a directory, not a scenario file\n"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("run.requests=lots", "run.requests: must be an integer >= 1, got 'lots'"),
        ("run.requests=0", "run.requests: must be an integer >= 1, got 0"),
        ("run.requests=[1", "run.requests: must be an integer >= 1, got '[1'"),
        ("services.api.replcas=2", "services.api.replcas: unknown key; valid keys are"),
        ("services.api.replicas.x=2", "services.api.replicas.x: cannot set a key inside a value that is not a mapping"),
        ("faults[3].at=1s", "faults[3]: no such list item"),
        ("faults[x].at=1s", "faults[x].at: list index 'x' is not an integer"),
        ("faults[0=1", "faults[0: is not a valid path"),
        ("run..requests=5", "run..requests: is not a valid path"),
        ("run.requests", "run.requests: an override must look like PATH=VALUE"),
        ("=5", "=5: an override needs a path before '='"),
        ("services=[]", "services: must be a mapping of service name to settings, got []"),
        ("workloads.users.rate=0", "workloads.users.rate: must be a rate > 0 for type poisson, got 0"),
        ("faults[0].instance=api-9", "faults[0].instance: unknown instance 'api-9'"),
    ],
)
def test_bad_set(capsys: pytest.CaptureFixture[str], override: str, message: str) -> None:
    for command in ("validate", "run"):
        code, out, err = cli(capsys, command, THREE_TIER, "--set", override)
        assert_clean_failure(code, out, err, message)
        assert out == ""


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", THREE_TIER, "--seed", "x"], "argument --seed: must be an integer >= 0, got 'x'"),
        (["run", THREE_TIER, "--seed", "-1"], "argument --seed: must be an integer >= 0, got -1"),
        (["run", THREE_TIER, "--seed", "1.5"], "argument --seed"),
        (["run"], "the following arguments are required: scenario"),
        (["validate"], "the following arguments are required: scenario"),
        (["run", THREE_TIER, "--set"], "argument --set: expected one argument"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["run", THREE_TIER, "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ],
)
def test_usage_errors(capsys: pytest.CaptureFixture[str], args: list[str], needle: str) -> None:
    code, out, err = cli(capsys, *args)
    assert_clean_failure(code, out, err, needle)


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys)
    assert code == 2
    assert "usage: meshsim" in out
    assert "Traceback" not in out + err


def test_out_is_an_existing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = write(tmp_path / "taken", "x")
    code, out, err = cli(capsys, "run", THREE_TIER, *SMALL, "--quiet", "--out", f)
    assert_clean_failure(code, out, err, str(f))


# -- run ------------------------------------------------------------------------------------


def test_run_out_writes_summary_and_requests(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_dir = tmp_path / "out" / "nested"
    code, out, err = cli(capsys, "run", THREE_TIER, *SMALL, "--out", out_dir)
    assert code == 0, err
    assert "Traceback" not in out + err
    assert "scenario three-tier  seed 1" in out
    assert "latency  mean" in out
    assert "wrote " in out and "summary.json" in out

    s = json.loads((out_dir / "summary.json").read_text(encoding="utf-8"))
    for key in ("requests", "completed", "failed", "throughput_rps", "latency_ms", "services"):
        assert key in s, key
    assert s["requests"] == 2000
    assert s["completed"] + s["failed"] == s["requests"]
    assert s["completed"] > 1900  # a light load: nearly everything completes
    assert 400 < s["throughput_rps"] < 600  # offered 500/s
    lat = s["latency_ms"]
    for q in ("mean", "p50", "p90", "p99", "p999", "max"):
        assert isinstance(lat[q], float) and lat[q] > 0, q
    assert lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p999"] <= lat["max"]
    assert set(s["services"]) == {"frontend", "api", "db"}
    db = s["services"]["db"]
    assert db["instances"] == 1
    assert db["offered_utilisation"] == pytest.approx(0.35)
    assert 0.2 < db["utilisation"] < 0.5
    assert 0 < db["latency_ms"]["mean"] < db["latency_ms"]["max"]
    assert s["services"]["api"]["instances"] == 3

    tables = [p for p in ("requests.csv", "requests.parquet") if (out_dir / p).exists()]
    assert len(tables) == 1
    if tables[0] == "requests.csv":
        lines = (out_dir / "requests.csv").read_text(encoding="utf-8").splitlines()
        assert "latency_ms" in lines[0] and "status" in lines[0]
        assert len(lines) == 2001


def test_set_requests_takes_effect(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = cli(capsys, "run", THREE_TIER, *SMALL, "--set", "run.requests=500", "--quiet", "--out", tmp_path)
    assert code == 0, err
    s = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert s["requests"] == 500
    assert s["services"]["frontend"]["calls"] == 500


def test_run_quiet_prints_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = write(tmp_path / "small.yaml", yaml.safe_dump(SMALL_SCENARIO))
    code, out, err = cli(capsys, "run", f, "--quiet")
    assert (code, out, err) == (0, "", "")


def test_seed_reproduces_byte_for_byte_and_changes_results(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = write(tmp_path / "small.yaml", yaml.safe_dump(SMALL_SCENARIO))
    dirs = {}
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        dirs[name] = tmp_path / name
        code, _, err = cli(capsys, "run", f, "--seed", seed, "--quiet", "--out", dirs[name])
        assert code == 0, err
    a, b, c = ((dirs[n] / "summary.json").read_bytes() for n in "abc")
    assert a == b
    assert a != c
    sa, sc = json.loads(a), json.loads(c)
    assert sa["seed"] == 5 and sc["seed"] == 6
    assert sa["latency_ms"]["mean"] != sc["latency_ms"]["mean"]
    assert sa["requests"] == sc["requests"] == 300
    for table in ("requests.csv", "requests.parquet"):
        if (dirs["a"] / table).exists():
            assert (dirs["a"] / table).read_bytes() == (dirs["b"] / table).read_bytes()


def test_default_seed_comes_from_the_scenario(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = write(tmp_path / "small.yaml", yaml.safe_dump({**SMALL_SCENARIO, "seed": 5}))
    cli(capsys, "run", f, "--quiet", "--out", tmp_path / "a")
    cli(capsys, "run", f, "--seed", "5", "--quiet", "--out", tmp_path / "b")
    assert (tmp_path / "a" / "summary.json").read_bytes() == (tmp_path / "b" / "summary.json").read_bytes()


def test_run_unstable_warns_but_runs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = write(tmp_path / "small.yaml", yaml.safe_dump(SMALL_SCENARIO))
    code, out, err = cli(capsys, "run", f, "--set", "services.cart.replicas=1", "--set",
                         "workloads.users.rate=1000/s", "--quiet")
    assert code == 0
    assert out == ""
    assert err == ("meshsim: warning: services.cart: offered utilisation 1.50 >= 1; "
                   "its queue will grow without bound\n")


# -- as a real process ----------------------------------------------------------------------------


def run_process(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "meshsim", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_process_bad_inputs_exit_2_without_traceback(tmp_path: Path) -> None:
    cases = [
        (write(tmp_path / "garbage.yaml", os.urandom(2048) + b"\xff"), "cannot be read"),
        (write(tmp_path / "list.yaml", "- 1\n- 2\n"), "must be a mapping"),
        (write(tmp_path / "empty.yaml", ""), "is empty"),
        (tmp_path, "is a directory"),
        (tmp_path / "missing.yaml", "no such file"),
    ]
    for path, needle in cases:
        p = run_process("validate", path)
        assert p.returncode == 2, (path, p.stderr)
        assert "Traceback" not in p.stdout + p.stderr
        assert needle in p.stderr and p.stderr.startswith("meshsim: ")
    p = run_process("run", THREE_TIER, "--seed", "-3")
    assert p.returncode == 2 and "Traceback" not in p.stderr and "--seed" in p.stderr
    p = run_process("run", THREE_TIER, "--set", "faults[0].at=soon")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "faults[0].at: must be a duration such as '250ms', '2s' or '5m', got 'soon'" in p.stderr


def test_the_run_program_ends_without_teardown_but_with_its_output_and_exit_functions(tmp_path: Path) -> None:
    """``meshsim run`` as a program leaves through os._exit (cli._leave): everything printed arrives, the
    atexit functions run, the files are complete and the status is the command's; a caller of main() gets
    the status back and its process goes on."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    program = ("import atexit, sys\n"
               "atexit.register(lambda: print('exit functions ran'))\n"
               "from meshsim.cli import main\n"
               "sys.argv = ['meshsim'] + sys.argv[1:]\n"
               "main()\n"
               "print('not reached')\n")
    args = ["run", str(THREE_TIER), *SMALL, "--seed", "3", "--out", str(tmp_path)]
    p = subprocess.run([sys.executable, "-c", program, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert "latency  mean" in p.stdout and f"wrote {tmp_path}" in p.stdout
    assert p.stdout.endswith("exit functions ran\n") and "not reached" not in p.stdout
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "requests.parquet").num_rows == 2000
    p = subprocess.run([sys.executable, "-c", program, "run", str(tmp_path / "missing.yaml")], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "no such file" in p.stderr and p.stdout == "exit functions ran\n"
    assert main(args[:1] + [str(THREE_TIER), *SMALL, "--quiet"]) == 0  # in this process: returns


def test_process_run_and_validate(tmp_path: Path) -> None:
    p = run_process("run", THREE_TIER, *SMALL, "--seed", "3", "--out", tmp_path)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stdout + p.stderr
    s = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert s["seed"] == 3 and s["requests"] == 2000
    p = run_process("validate", SCENARIOS / "tandem.yaml")
    assert p.returncode == 0
    assert [ln.split()[-1] for ln in p.stdout.splitlines()[1:]] == ["0.800", "0.800", "0.800"]
