"""lookahead.distill: a PETS run's planner distilled into a policy (DAgger) from Python and from
``python -m lookahead distill``, its folder and its refusals."""
import subprocess
import sys

import pytest

import lookahead as la

# A cheap PETS cartpole run: 200 random steps, one trial of 30 steps, a small planner.
PETS_SETS = ["loop.trials=1", "loop.trial_length=30", "planner.population=50", "planner.particles=4"]
# A short distillation: iteration 0 and one DAgger iteration of one episode each.
SETS = ["train.updates_per_iteration=100", "dagger.eval_episodes=2"]


@pytest.fixture(scope="module")
def pets_run(cli, tmp_path_factory):
    """A built-in cartpole PETS run folder made by the command line."""
    out = tmp_path_factory.mktemp("pets") / "run"
    args = [cli, "pets", "--env", "cartpole", "--preset", "demo", "--out", str(out)]
    for s in PETS_SETS:
        args += ["--set", s]
    p = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    return out


def test_resolve_names_every_bad_key_at_once():
    """The defaults as a dict; bad keys of every section named at once. Catches a section whose
    keys are not checked and a keyword argument that does not reach the config."""
    cfg = la.distill.resolve()
    assert cfg["dagger"]["mode"] == "dagger" and cfg["policy"]["hidden"] == [64, 64]
    with pytest.raises(la.ConfigError) as e:
        la.distill.resolve(config={"policy": {"widths": [3]}, "train": {"lr": -1.0}}, sets=["dagger.bogus=1"])
    for key in ("policy.widths", "train.lr", "dagger.bogus"):
        assert key in str(e.value), (key, str(e.value))


def test_bad_input_is_refused_before_any_work(ctx, tmp_path):
    """A folder without a PETS run, overwrite with resume, a mode that does not exist: refused,
    nothing written. Catches a distillation that starts on a folder it cannot use."""
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(la.ConfigError, match="holds no PETS run"):
        la.distill.run(empty, progress=False, ctx=ctx)
    assert not (empty / "distill").exists()
    with pytest.raises(ValueError, match="exclude each other"):
        la.distill.run(empty, overwrite=True, resume=True, ctx=ctx)
    with pytest.raises(la.ConfigError, match="dagger.mode"):
        la.distill.run(empty, mode="imitate", ctx=ctx)


def test_a_distillation_writes_its_folder_and_its_policy_acts(ctx, pets_run):
    """Two iterations into RUN/distill: results.csv's rows with the policy's and the planner's
    returns, the curve, and a policy that lookahead.sac.Policy loads from the folder and acts
    with within the bounds. Catches the folder's files not written, the summary's fields lost on
    the way to Python, and a policy file Policy cannot read."""
    r = la.distill.run(pets_run, iterations=1, episodes=1, sets=SETS, progress=False, ctx=ctx)
    assert not r["interrupted"] and [it["iteration"] for it in r["iterations"]] == [0, 1], r
    assert len(r["planner_returns"]) == 2
    assert r["iterations"][1]["labels"] > r["iterations"][0]["labels"] > 0
    out = pets_run / "distill"
    for name in ("config.toml", "metrics.jsonl", "results.csv", "policy.safetensors", "distill_curve.svg",
                 "resume.json"):
        assert (out / name).is_file(), name
    header = (out / "results.csv").read_text().splitlines()[0]
    assert "policy_return" in header and "planner_return" in header
    policy = la.sac.Policy.load(out)
    a = policy.act([0.0, 0.0, 0.05, 0.0])
    assert len(a) == 1 and -1.0 - 1e-9 <= a[0] <= 1.0 + 1e-9
    # The folder holds a distillation now: a second one is refused unless overwritten.
    with pytest.raises(la.ConfigError):
        la.distill.run(pets_run, iterations=1, episodes=1, sets=SETS, progress=False, ctx=ctx)


def test_command_line_distils_and_refuses_bad_keys(pets_run, tmp_path):
    """`python -m lookahead distill` exits 0 with a line per iteration, and 1 naming a bad key
    without a traceback. Catches the subcommand missing or its flags not reaching the config."""
    out = tmp_path / "d"
    args = [sys.executable, "-m", "lookahead", "distill", "--run", str(pets_run), "--iterations", "0", "--out", str(out)]
    p = subprocess.run(args + ["--set", SETS[0], "--set", SETS[1]], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0 and "iteration 0: policy" in p.stdout, (p.stdout, p.stderr[-2000:])
    assert (out / "policy.safetensors").is_file()
    p = subprocess.run(args + ["--overwrite", "--set", "train.bogus=1"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "train.bogus" in p.stderr and "Traceback" not in p.stderr, p.stderr
