"""MBPO through the Python package: the config, bad input refused before any work, short runs on
the built-in cartpole and on gymnasium's InvertedPendulum-v5 (the rollouts on its WGSL task)
with their run folders and replays, Ctrl-C, and `python -m lookahead mbpo`."""
import json
import math
import signal
import subprocess
import sys

import gymnasium
import pytest

import lookahead as la

# Tiny networks and a 400-step schedule: 200 random steps, then the model trained and rolled
# out at steps 200 and 300 (epochs of 100 steps, an evaluation at each epoch's end).
TINY = [
    "model.members=2", "model.hidden=[16, 16]", "train.num_elites=2", "train.epochs=3", "train.batch_size=32",
    "sac.actor_hidden=[16, 16]", "sac.critic_hidden=[16, 16]", "sac.batch_size=32", "sac.updates_per_step=1",
    "rollout.rollouts_per_step=2", "rollout.freq_train_model=100", "rollout.epoch_length=100",
    "rollout.rollout_schedule=[1, 2, 1, 2]", "loop.initial_exploration_steps=200", "loop.total_steps=400",
    "loop.buffer_capacity=1000", "loop.eval_episodes=1",
]
COLUMNS = "env_step,episodes,eval_return,eval_std,train_return,critic_loss,actor_loss,alpha,entropy,seconds"


def events(out, kind):
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == kind]


def csv_rows(out):
    lines = (out / "results.csv").read_text().splitlines()
    assert lines[0] == COLUMNS, lines[0]
    return [line.split(",") for line in lines[1:]]


def test_resolve_gives_the_presets_of_each_task_as_a_dict():
    """The config as a dict, from each task's own preset. Catches a gymnasium id resolved from
    the generic gymnasium preset instead of its mbrl-lib override (Hopper's rollout schedule,
    InvertedPendulum's schedule), a built-in environment given gymnasium settings, and `sets`
    not applied over the preset."""
    hopper = la.mbpo.resolve("gymnasium:Hopper-v5")
    assert hopper["rollout"]["rollout_schedule"] == [20, 150, 1, 15] and hopper["sac"]["updates_per_step"] == 40
    assert la.mbpo.resolve("InvertedPendulum-v5")["loop"]["total_steps"] == 25_000
    cartpole = la.mbpo.resolve("cartpole", sets=["rollout.freq_train_model=100", "seed=4"])
    assert cartpole["env"] == "cartpole" and cartpole["loop"]["total_steps"] == 10_000, cartpole
    assert cartpole["rollout"]["freq_train_model"] == 100 and cartpole["seed"] == 4
    demo = la.mbpo.resolve("pendulum", preset="demo", config={"sac": {"gamma": 0.98}})
    assert demo["env"] == "pendulum" and demo["model"]["members"] == 5 and demo["sac"]["gamma"] == 0.98


def test_bad_input_is_refused_before_any_work(ctx, tmp_path):
    """Unknown keys and impossible values (from config, sets and a file, all reported in one
    error), a bad preset, resume, and an environment without a task are refused before any
    folder is made. Catches a check that stops at the first problem, a layer whose keys are not
    checked, a preset name taken as another, and work started before the refusal."""
    out = tmp_path / "never"
    f = tmp_path / "c.toml"
    f.write_text("[rollout]\nrollout_len = 3\n")
    with pytest.raises(la.ConfigError) as e:
        la.mbpo.run("cartpole", preset="demo", config={"model": {"membres": 3}, "sac": {"gamma": 2.0}},
                    sets=["rollout.bogus=1", "loop.trial_length=0"], config_file=f, out=out, progress=False, ctx=ctx)
    for key in ("model.membres", "sac.gamma", "rollout.bogus", "loop.trial_length", "rollout.rollout_len"):
        assert key in str(e.value), (key, str(e.value))
    for kw, exc, text in [
        (dict(preset="fast"), la.ConfigError, "unknown preset \"fast\"; known: reference, demo"),
        (dict(resume=True), la.ConfigError, "nothing to resume"),
        (dict(overwrite=True, resume=True), ValueError, "exclude each other"),
        (dict(sets=["env=pendulum"]), ValueError, "env argument"),
        (dict(task=la.Task.builtin("cartpole")), ValueError, "leave task out"),
    ]:
        with pytest.raises(exc, match=text):
            la.mbpo.run("cartpole", out=out, progress=False, ctx=ctx, **kw)
    # A gymnasium environment without a built-in task, and one of other sizes than its task.
    with pytest.raises(ValueError, match="no built-in task for 'MountainCarContinuous-v0'"):
        la.mbpo.run("MountainCarContinuous-v0", out=out, progress=False, ctx=ctx)
    with pytest.raises(ValueError, match="the environment has obs 3 / act 1, the task cartpole has obs 4 / act 1"):
        la.mbpo.run(gymnasium.make("Pendulum-v1"), task=la.Task.builtin("cartpole"), out=out, progress=False, ctx=ctx)
    assert not out.exists()


def test_builtin_cartpole_run_writes_an_mbpo_folder_and_replays(ctx, tmp_path):
    """A 400-step run on the engine's cartpole: run.json of kind mbpo, config.toml an MBPO
    config, a "model" event per training with its rollout length, results.csv rows that the
    returned evaluations match, and a replay of the policy on the run's own environment. Catches
    the built-in path running another loop or environment, the summary not being the run's, and
    a replay that cannot read an MBPO folder's config."""
    out = tmp_path / "cartpole"
    r = la.mbpo.run("cartpole", preset="demo", sets=TINY, out=out, seed=5, progress=False, ctx=ctx)
    assert not r["interrupted"] and r["env_steps"] == 400 and r["episodes"] >= 2, r
    assert json.loads((out / "run.json").read_text())["kind"] == "mbpo"
    cfg = (out / "config.toml").read_text()
    assert "[rollout]" in cfg and "[model]" in cfg and 'env = "cartpole"' in cfg and "seed = 5" in cfg, cfg
    assert "external_env" not in cfg
    model = events(out, "model")
    assert [e["env_step"] for e in model] == [200, 300], model
    assert all(e["rollout_length"] in (1, 2) and e["model_buffer"] > 0 for e in model), model
    rows = csv_rows(out)
    assert rows and len(rows) == len(r["evals"]), (rows, r["evals"])
    assert [int(row[0]) for row in rows] == [e["env_step"] for e in r["evals"]]
    assert [float(row[2]) for row in rows] == [e["eval_return"] for e in r["evals"]]
    assert all(math.isfinite(e["eval_return"]) and e["alpha"] > 0 for e in r["evals"]), r["evals"]
    for name in ("model.safetensors", "learning_curve.svg", "metrics.jsonl"):
        assert (out / name).exists(), name
    # The policy is a SAC actor of the cartpole's sizes; the replay runs on the run's cartpole.
    policy = la.mbpo.Policy.load(out)
    assert (policy.obs_dim, policy.act_dim) == (4, 1)
    replay = la.mbpo.evaluate(out, episodes=2, seed=1)
    assert len(replay) == 2 and all(0 < x <= 200 for x in replay), replay
    with pytest.raises(ValueError, match="ran on cartpole, not on the built-in pendulum"):
        la.mbpo.evaluate(out, "pendulum", episodes=1)


def test_gymnasium_run_rolls_out_the_wgsl_task_end_to_end(ctx, tmp_path):
    """400 steps on InvertedPendulum-v5, whose rollouts take the WGSL reward and termination of
    lookahead.gym's task (demo: the model does not learn the reward): the folder names the
    environment, the model trains twice, and evaluate() with no env replays on the environment
    the config names. Catches the Python environment or its task not reaching the engine, the
    external environment not recorded, and a replay that cannot make the run's environment."""
    out = tmp_path / "ip"
    r = la.mbpo.run("gymnasium:InvertedPendulum-v5", preset="demo", sets=TINY, out=out, progress=False, ctx=ctx)
    assert not r["interrupted"] and r["env_steps"] == 400 and r["evals"], r
    cfg = (out / "config.toml").read_text()
    assert 'external_env = "gymnasium:InvertedPendulum-v5"' in cfg and "learned_reward = false" in cfg, cfg
    assert [e["rollout_length"] for e in events(out, "model")] == [1, 2]
    assert len(csv_rows(out)) == len(r["evals"])
    replay = la.mbpo.evaluate(out, episodes=2)
    # 1 per step while upright, 0 on the step that ends it: a whole number.
    assert len(replay) == 2 and all(x >= 0 and x == int(x) for x in replay), replay


def test_ctrl_c_stops_the_run_and_restores_the_handler(ctx, tmp_path):
    """SIGINT from the environment's step 30 (a random step): run returns interrupted at the
    next step with the handler restored. Catches an MBPO run not watched for Ctrl-C (it would
    run to its end) and a handler left installed."""
    before = signal.getsignal(signal.SIGINT)

    class CtrlCAt(gymnasium.Wrapper):
        calls = 0

        def step(self, action):
            CtrlCAt.calls += 1
            if CtrlCAt.calls == 30:
                signal.raise_signal(signal.SIGINT)
            return self.env.step(action)

    r = la.mbpo.run(CtrlCAt(gymnasium.make("Pendulum-v1")), preset="demo", sets=TINY, out=tmp_path / "cut",
                    progress=False, ctx=ctx)
    assert r["interrupted"] and r["stopped_at"] == "step 31" and r["env_steps"] == 30, r
    assert signal.getsignal(signal.SIGINT) is before


def test_command_line_refuses_bad_input(tmp_path):
    """`python -m lookahead mbpo` with bad keys exits 1 naming each, with a bad preset 2, and
    with --resume 1 saying why; nothing is written. Catches the subcommand missing, a traceback
    instead of one line, and a bad key passed over silently."""
    out = tmp_path / "r"
    for args, rc, texts in [
        (["--env", "cartpole", "--set", "rollout.bogus=1", "--set", "model.width=3"], 1,
         ["rollout.bogus", "model.width"]),
        (["--env", "gymnasium:InvertedPendulum-v5", "--set", "sac.gama=1"], 1, ["sac.gama"]),
        (["--env", "cartpole", "--preset", "fast"], 2, ["invalid choice"]),
        (["--env", "cartpole", "--resume"], 1, ["nothing to resume"]),
    ]:
        p = subprocess.run([sys.executable, "-m", "lookahead", "mbpo", *args, "--out", str(out)],
                           capture_output=True, text=True, timeout=120)
        ok = p.returncode == rc and all(t in p.stderr for t in texts) and "Traceback" not in p.stderr
        assert ok, (args, p.returncode, p.stderr)
    assert not out.exists()


def test_command_line_runs_the_builtin_cartpole(tmp_path):
    """`python -m lookahead mbpo --env cartpole` runs the schedule it is given and prints the
    returns of results.csv. Catches the subcommand not reaching the run, settings dropped on the
    way, and a report that fails after the run."""
    out = tmp_path / "cli"
    sets = [a for s in TINY for a in ("--set", s)]
    p = subprocess.run([sys.executable, "-m", "lookahead", "mbpo", "--env", "cartpole", "--preset", "demo",
                        "--seed", "2", "--out", str(out), *sets], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "mbpo cartpole (demo)" in p.stderr and "ensemble 2 × [16, 16]" in p.stderr, p.stderr
    returns = [float(row[2]) for row in csv_rows(out)]
    assert f"evaluation returns: {' '.join(f'{x:.1f}' for x in returns)}" in p.stdout, p.stdout
    assert f"run folder: {out}" in p.stdout and "seed = 2" in (out / "config.toml").read_text()
    assert [e["env_step"] for e in events(out, "model")] == [200, 300]
