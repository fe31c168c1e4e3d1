"""`lookahead.sweep` on a local Ray instance: a 2 × 2 sweep of tiny PETS runs on the built-in
cartpole (summary, curves, the rerun that skips, a trial that fails alone, a sweep interrupted
with Ctrl-C that finishes on the rerun as an uninterrupted one did) and the spec's refusals."""
import contextlib
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

import lookahead as la
from lookahead import sweep

# Each trial: 60 random steps, then 8 PETS trials of at most 30 steps with a tiny ensemble and
# planner (about 2 s on lavapipe, long enough after its first consistent point to be interrupted).
TINY = {"loop.trials": 8, "loop.trial_length": 30, "loop.initial_exploration_steps": 60, "train.epochs": 5,
        "train.num_elites": 1, "model.members": 2, "model.hidden": [16, 16], "planner.population": 200,
        "planner.particles": 2, "planner.horizon": 5, "planner.iterations": 2}
SPEC = {"algorithm": "pets", "env": "cartpole", "preset": "demo", "seeds": [0, 1], "threshold": 25.0,
        "set": TINY, "grid": {"planner.kind": ["cem", "mppi"]}}
NAMES = ["000-cem-seed0", "000-cem-seed1", "001-mppi-seed0", "001-mppi-seed1"]


@pytest.fixture(scope="module")
def ray_local(ctx):
    """A local Ray instance of two CPUs for this module's sweeps (the adapter checked first)."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def uninterrupted(ray_local, tmp_path_factory):
    """The 2 × 2 sweep run once, uninterrupted: its folder and result."""
    out = tmp_path_factory.mktemp("sweep") / "a"
    return out, sweep.run(SPEC, out=out, progress=False)


@pytest.fixture
def ray_head():
    """A Ray cluster of one CPU started as a user starts one (`ray start --head`), stopped after
    the test (only it: `--block` ties its processes to the command's); its address."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # The `ray` beside this Python (a fresh pyenv may have no shim for it yet), else on PATH.
    beside = os.path.join(os.path.dirname(sys.executable), "ray")
    ray_cli = beside if os.path.exists(beside) else shutil.which("ray")
    assert ray_cli, "Ray's command line is missing: pip install \"./python[ray]\""
    head = subprocess.Popen([ray_cli, "start", "--head", "--block", f"--port={port}", "--num-cpus=1",
                             "--include-dashboard=false", "--disable-usage-stats"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while True:
        assert head.poll() is None and time.monotonic() < deadline, "ray start --head did not come up"
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    yield f"127.0.0.1:{port}"
    head.terminate()  # `ray start --block` stops the cluster's processes, then exits
    head.wait(timeout=60)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(head.pid, signal.SIGKILL)  # whatever outlived it


def records(out):
    """Each trial's record (status, curve, seconds, message) as the sweep kept it."""
    return {p.stem: json.loads(p.read_text()) for p in (out / "records").glob("*.json")}


def test_a_2x2_sweep_writes_its_summary_and_curves_and_a_rerun_skips_it(uninterrupted):
    """Catches: a trial left out or run twice, a seed or configuration not reaching its run (the
    run folders' configs are checked), summary columns wrong, the curve not written, a rerun
    running finished trials again (their files would change)."""
    out, r = uninterrupted
    assert not r["interrupted"]
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert [row["trial"] for row in rows] == NAMES, rows
    assert all(row["status"] == "finished" and row["message"] == "" for row in rows), rows
    for row in rows:
        cfg = (out / row["trial"] / "config.toml").read_text()
        assert f'kind = "{row["planner.kind"]}"' in cfg and f"seed = {row['seed']}" in cfg, cfg
        results = list(csv.DictReader(open(out / row["trial"] / "results.csv")))
        assert len(results) == 8
        assert float(row["final_return"]) == float(results[-1]["return"])
        assert float(row["best_return"]) == max(float(x["return"]) for x in results)
        assert float(row["env_steps"]) == float(results[-1]["env_step"])
        reached = [float(x["env_step"]) for x in results if float(x["return"]) >= 25.0]
        assert row["steps_to_threshold"] == ("" if not reached else str(reached[0])), row
    svg = (out / "curves.svg").read_text()
    assert "planner.kind=cem (2 seeds)" in svg and "planner.kind=mppi (2 seeds)" in svg
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != "sweep.lock"}
    again = sweep.run(SPEC, out=out, progress=False)
    assert [row["status"] for row in again["rows"]] == ["finished"] * 4
    changed = [str(p) for p in out.rglob("*") if p.is_file() and p.name != "sweep.lock"
               and before.get(p) != p.stat().st_mtime_ns and p.name not in ("summary.csv", "curves.svg")]
    assert changed == [], changed


def test_a_trial_that_fails_fails_alone_with_its_message(ray_local, tmp_path):
    """A configuration the engine refuses (a planner kind that does not exist), and a trial
    whose run refuses its folder, each fail with their message; the rest finish. Catches: one
    failure ending the sweep, a failure reported without its message, a failed trial counted as
    finished, a rerun not retrying failed trials."""
    spec = dict(SPEC, seeds=[0], grid={"planner.kind": ["cem", "bogus"]})
    r = sweep.run(spec, out=tmp_path / "s", progress=False)
    status = {row["trial"]: (row["status"], row["message"]) for row in r["rows"]}
    assert status["000-cem-seed0"] == ("finished", ""), status
    assert status["001-bogus-seed0"][0] == "failed" and "planner.kind" in status["001-bogus-seed0"][1], status
    # The finished trial's run folder made unusable: the rerun's resume fails, and says why.
    os.remove(tmp_path / "s" / "records" / "000-cem-seed0.json")
    (tmp_path / "s" / "000-cem-seed0" / "config.toml").write_text("not = [toml")
    r = sweep.run(spec, out=tmp_path / "s", progress=False)
    row = r["rows"][0]
    assert row["status"] == "failed" and "config.toml" in row["message"], row


def test_an_interrupted_sweep_finishes_on_the_rerun_as_an_uninterrupted_one(uninterrupted, ray_head, tmp_path):
    """Ctrl-C (SIGINT to the command's process group, as a terminal sends it) to a sweep on a
    running cluster once a trial has ended and another runs past its first consistent point:
    exit 130, no trial failed, the running one interrupted, every trial not finished left to the
    rerun; the rerun, on a local instance,
    finishes the sweep with the uninterrupted sweep's curves, resuming the interrupted trial.
    Catches: Ctrl-C killing the trials (failed records, lost resume points), a rerun starting
    interrupted trials afresh or in a way that changes results, finished trials redone."""
    out = tmp_path / "b"
    toml = tmp_path / "spec.toml"
    toml.write_text(_as_toml(SPEC))
    # The interrupted sweep joins a running cluster (`--address`; Ray's token authentication asks
    # for RAY_AUTH_MODE=token, as a user's cluster does); the rerun starts a local instance.
    cmd = [sys.executable, "-m", "lookahead", "sweep", str(toml), "--out", str(out)]
    p = subprocess.Popen(cmd + ["--address", ray_head], start_new_session=True, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, env=dict(os.environ, RAY_AUTH_MODE="token"),
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not _midway(out):
        assert p.poll() is None and time.monotonic() < deadline, p.stdout.read() if p.poll() is not None else "timeout"
        time.sleep(0.02)
    os.killpg(p.pid, signal.SIGINT)
    log = p.communicate(timeout=120)[0]
    assert p.returncode == 130, log
    stopped = records(out)
    assert all(r["status"] in ("finished", "interrupted") for r in stopped.values()), stopped
    assert sum(r["status"] == "finished" for r in stopped.values()) < 4, log
    assert any(r["status"] == "interrupted" for r in stopped.values()), (stopped, log)
    # An interrupted trial with a resume point keeps its run (the marker's id): resumed, not redone.
    markers = {n: (out / n / "run.json").read_text() for n, r in stopped.items()
               if r["status"] == "interrupted" and (out / n / "resume.json").exists()}
    assert markers, stopped
    done = subprocess.run(cmd + ["--num-cpus", "2"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert {n: (out / n / "run.json").read_text() for n in markers} == markers
    full, resumed = records(uninterrupted[0]), records(out)
    assert {n: r["curve"] for n, r in resumed.items()} == {n: r["curve"] for n, r in full.items()}
    for n, r in stopped.items():
        if r["status"] == "finished":
            assert resumed[n] == r, n


def _midway(out):
    """Whether a trial has ended and another has reached its first consistent point and runs."""
    ended = {p.stem for p in (out / "records").glob("*.json")} if (out / "records").is_dir() else set()
    return bool(ended) and any((d / "resume.json").exists() and d.name not in ended for d in out.glob("0*"))


def _as_toml(spec):
    """A spec dict of this module's shape as TOML text."""
    def value(v):
        return json.dumps(v)
    lines = [f"{k} = {value(v)}" for k, v in spec.items() if not isinstance(v, dict)]
    for table in ("set", "grid"):
        lines.append(f"[{table}]")
        lines.extend(f'"{k}" = {value(v)}' for k, v in spec[table].items())
    return "\n".join(lines) + "\n"


def test_a_spec_is_refused_before_anything_starts_with_every_problem(tmp_path):
    """Catches: a problem reported alone (the first only), an unknown key or empty grid
    accepted, a folder created or Ray started for a refused spec or impossible resources, a
    [set] the engine refuses or a grid of which nothing resolves reaching the trials."""
    bad = dict(SPEC, seedz=[1], seeds=[], grid={}, preset="huge", set={"seed": 3}, samples=2,
               sample={"train.lr": {"log_uniform": [0, 1e-3]}})
    with pytest.raises(la.ConfigError) as e:
        sweep.run(bad, out=tmp_path / "never")
    for part in ("unknown keys ['seedz']", "preset: 'huge'", "seeds: []", "set.seed", "grid: empty",
                 "sample.train.lr.log_uniform"):
        assert part in str(e.value), (part, str(e.value))
    with pytest.raises(la.ConfigError, match=r"set: invalid config: planner\.populatio: unknown key"):
        sweep.run(dict(SPEC, set={"planner.populatio": 3}), out=tmp_path / "never")
    with pytest.raises(la.ConfigError, match="no configuration resolves"):
        sweep.run(dict(SPEC, grid={"planner.kind": ["nope", "bogus"]}), out=tmp_path / "never")
    with pytest.raises(la.ConfigError, match="empty list"):
        sweep.run(dict(SPEC, grid={"planner.kind": []}), out=tmp_path / "never")
    with pytest.raises(ValueError, match=r"gpus_per_trial: -1.*cpus_per_trial: 0.*num_cpus: a cluster"):
        sweep.run(SPEC, out=tmp_path / "never", gpus_per_trial=-1, cpus_per_trial=0, num_cpus=2, address="h:1")
    assert not (tmp_path / "never").exists()
    spec = tmp_path / "spec.toml"
    spec.write_text("algorithm = [")
    with pytest.raises(la.ConfigError, match="not TOML"):
        sweep.load_spec(spec)
    # A folder of someone else's files, and one holding a sweep of another spec.
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "notes.txt").write_text("mine")
    with pytest.raises(la.FileError, match="files no sweep wrote"):
        sweep.run(dict(SPEC, grid={"planner.kind": ["cem", "bogus"]}), out=tmp_path / "theirs")


def test_configurations_combine_the_grid_with_samples_reproducibly():
    """Catches: a grid point or draw lost, draws outside their range, draws that change between
    runs of the same spec (a rerun would find other trials), trial names that collide."""
    spec = sweep.load_spec(dict(SPEC, samples=3, sample_seed=7,
                                sample={"train.lr": {"log_uniform": [1e-4, 1e-2]}, "train.batch_size": {"int": [16, 64]}}))
    confs = spec.configurations()
    assert len(confs) == 6 and sorted({c["planner.kind"] for c in confs}) == ["cem", "mppi"]
    assert all(1e-4 <= c["train.lr"] <= 1e-2 and 16 <= c["train.batch_size"] <= 64 for c in confs)
    assert confs == sweep.load_spec(spec.as_json()).configurations()
    names = [t.name for t in sweep.trials_of(spec)]
    assert len(names) == len(set(names)) == 12
