"""SAC through the Python package on gymnasium's Pendulum-v1: the run folder, resuming to the
uninterrupted result from the API and from `python -m lookahead sac`, the policy on the CPU and
the GPU, replay, Ctrl-C and bad input."""
import json
import re
import signal
import subprocess
import sys

import gymnasium
import numpy as np
import pytest

import lookahead as la

# Tiny networks, 1 500 steps, an evaluation every 500 (at the ends of the 200-step episodes in
# which they fall due: steps 600 and 1000, and the last at 1500).
SETS = [
    "sac.actor_hidden=[16, 16]", "sac.critic_hidden=[16, 16]", "sac.batch_size=32",
    "loop.buffer_capacity=2000", "loop.random_steps=200", "loop.total_steps=1500",
    "loop.eval_every=500", "loop.eval_episodes=1",
]
COLUMNS = "env_step,episodes,eval_return,eval_std,train_return,critic_loss,actor_loss,alpha,entropy,seconds"


def cli(out, *extra, sets=SETS):
    cmd = [sys.executable, "-m", "lookahead", "sac", "--env", "gymnasium:Pendulum-v1", "--preset", "demo",
           "--seed", "3", "--out", str(out), *extra]
    for s in sets:
        cmd += ["--set", s]
    return cmd


def rows(out):
    """results.csv without the wall-time column."""
    lines = (out / "results.csv").read_text().splitlines()
    assert lines[0] == COLUMNS, lines[0]
    return [line.rsplit(",", 1)[0] for line in lines[1:]]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """One uninterrupted run through the command line: (its folder, its stdout)."""
    out = tmp_path_factory.mktemp("sac") / "straight"
    p = subprocess.run(cli(out), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return out, p.stdout


def test_command_line_run_writes_the_folder_and_prints_the_returns(straight):
    out, stdout = straight
    for name in ("config.toml", "metrics.jsonl", "results.csv", "model.safetensors", "learning_curve.svg",
                 "resume.json"):
        assert (out / name).exists(), name
    steps = [int(r.split(",")[0]) for r in rows(out)]
    assert steps == [600, 1000, 1500], steps
    returns = [float(r.split(",")[2]) for r in rows(out)]
    # The printed returns are results.csv's, and the run folder is named.
    assert f"evaluation returns: {' '.join(f'{r:.1f}' for r in returns)}" in stdout, stdout
    assert f"run folder: {out}" in stdout and "last evaluation" in stdout, stdout
    cfg = (out / "config.toml").read_text()
    assert 'external_env = "gymnasium:Pendulum-v1"' in cfg and "seed = 3" in cfg and "batch_size = 32" in cfg
    events = [json.loads(line)["event"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert events[0] == "start" and events.count("eval") == 3 and events[-1] == "end", events


def test_python_run_stopped_by_ctrl_c_resumes_to_the_uninterrupted_results(straight, ctx, tmp_path):
    """SIGINT at training step 1100 (after the evaluation at 1000): run returns interrupted with
    two evaluations; resume=True gives results.csv of the uninterrupted command-line run, and the
    returned dicts hold every column of results.csv."""
    expected = rows(straight[0])

    class CtrlCAt(gymnasium.Wrapper):
        calls = 0

        def step(self, action):
            CtrlCAt.calls += 1
            # Training steps and the 200-step evaluations after 600 and 1000: call 1500 is
            # training step 1100.
            if CtrlCAt.calls == 1500:
                signal.raise_signal(signal.SIGINT)
            return self.env.step(action)

    before = signal.getsignal(signal.SIGINT)
    out = tmp_path / "cut"
    r = la.sac.run(CtrlCAt(gymnasium.make("Pendulum-v1")), preset="demo", sets=SETS, out=out, seed=3,
                   progress=False, ctx=ctx)
    assert r["interrupted"] and r["stopped_at"] == "step 1101", r
    assert signal.getsignal(signal.SIGINT) is before
    assert [e["env_step"] for e in r["evals"]] == [600, 1000] and rows(out) == expected[:2]
    r = la.sac.run("gymnasium:Pendulum-v1", preset="demo", sets=SETS, out=out, seed=3, resume=True,
                   progress=False, ctx=ctx)
    assert not r["interrupted"] and r["env_steps"] == 1500 and r["episodes"] == 7, r
    assert rows(out) == expected
    # Every column, as results.csv writes it (NaN where nothing was measured).
    e = r["evals"][-1]
    assert list(e) == COLUMNS.split(","), list(e)
    csv_last = expected[-1].split(",")
    assert [e["env_step"], e["episodes"]] == [int(v) for v in csv_last[:2]]
    assert [float(v) for v in csv_last[2:]] == [e[k] for k in COLUMNS.split(",")[2:-1]]
    assert isinstance(e["env_step"], int) and e["alpha"] > 0 and np.isfinite(e["critic_loss"])
    assert str(r["out_dir"]) == str(out)


def test_command_line_ctrl_c_exits_130_and_resume_finishes_the_run(straight, tmp_path):
    """SIGINT to `python -m lookahead sac` once the first evaluation is written: exit 130 naming
    --resume; the same command with --resume exits 0 with the uninterrupted results."""
    import time

    out = tmp_path / "cut"
    p = subprocess.Popen(cli(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not ((out / "results.csv").exists() and len((out / "results.csv").read_text().splitlines()) >= 2):
        assert p.poll() is None and time.time() - t0 < 300, "the run ended before its first evaluation"
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 130 and "--resume" in stderr and "Traceback" not in stderr, (p.returncode, stderr[-2000:])
    assert "interrupted at step" in stderr and "evaluation returns:" in stdout, (stdout, stderr)
    assert 1 <= len(rows(out)) < 3
    r = subprocess.run(cli(out, "--resume"), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert rows(out) == rows(straight[0])


def test_policy_acts_alike_on_the_cpu_and_the_gpu_and_replays(straight, ctx, sigint, capsys):
    policy = la.sac.Policy.load(straight[0])
    assert (policy.obs_dim, policy.act_dim) == (3, 1)
    rng = np.random.default_rng(0)
    obs = np.column_stack([np.cos(t := rng.uniform(-np.pi, np.pi, 64)), np.sin(t), rng.uniform(-8, 8, 64)])
    gpu = policy.act_batch(obs, ctx=ctx)
    assert gpu.shape == (64, 1) and gpu.dtype == np.float32
    cpu = np.array([policy.act(o) for o in obs])
    assert cpu.dtype == np.float64
    np.testing.assert_allclose(gpu, cpu, atol=1e-4, rtol=0)
    # The actions vary with the observation (a constant policy would pass the comparison) and
    # stay within Pendulum's bounds.
    assert np.ptp(cpu) > 0.1 and np.all(np.abs(cpu) <= 2.0), cpu.ravel()
    # The default device, and a model.safetensors path, give the same.
    same = la.sac.Policy.load(straight[0] / "model.safetensors")
    np.testing.assert_array_equal(same.act_batch(obs[:5]), gpu[:5])
    with pytest.raises(ValueError, match=r"obs: shape \(4,\); expected \(3,\)"):
        policy.act(np.zeros(4))
    with pytest.raises(la.InputError, match="observation value 1 is NaN"):
        policy.act([0.0, np.nan, 0.0])
    with pytest.raises(la.FileError):
        la.sac.Policy.load(straight[0] / "config.toml")
    # The replay's returns are the evaluation's kind of return: finite, one per episode.
    replay = la.sac.evaluate(straight[0], "gymnasium:Pendulum-v1", episodes=2, seed=1)
    assert len(replay) == 2 and all(-2000 < x <= 0 for x in replay), replay
    # Ctrl-C in the replay: KeyboardInterrupt, the finished episodes on stderr.
    from test_pets import SigintAt

    env = SigintAt(gymnasium.make("Pendulum-v1"), sigint, 210)
    with pytest.raises(KeyboardInterrupt):
        la.sac.evaluate(straight[0], env, episodes=10**6)
    assert sigint.since() < sigint.BOUND
    err = capsys.readouterr().err
    # The signal comes from another thread early in the second episode; that thread waits for
    # the GIL, so a loaded machine may let an episode or two more finish first.
    m = re.search(r"interrupted after (\d+) of 1000000 episodes: returns -?\d", err)
    assert m and 1 <= int(m.group(1)) <= 10, err


class Unbounded(gymnasium.Wrapper):
    """Pendulum-v1 with unbounded actions."""

    def __init__(self, env):
        super().__init__(env)
        self.action_space = gymnasium.spaces.Box(-np.inf, np.inf, (1,), np.float32)


class HalfBounded(gymnasium.Env):
    """No gymnasium id, and its second action dimension has no lower bound."""

    observation_space = gymnasium.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gymnasium.spaces.Box(np.array([-1.0, -np.inf], np.float32), np.ones(2, np.float32))

    def reset(self, seed=None, options=None):
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 0.0, False, True, {}


def test_bad_input_is_refused_before_any_work_with_clear_errors(ctx, tmp_path):
    out = tmp_path / "never"
    with pytest.raises(la.InputError, match=r"gymnasium:Pendulum-v1: action bounds of dimension 0: \[-inf, inf\]"):
        la.sac.run(Unbounded(gymnasium.make("Pendulum-v1")), preset="demo", out=out, progress=False, ctx=ctx)
    with pytest.raises(la.InputError, match=r"python:HalfBounded: action bounds of dimension 1: \[-inf, 1\]"):
        la.sac.run(HalfBounded(), preset="demo", out=out, progress=False, ctx=ctx)
    assert not out.exists()
    # Every unknown key and impossible value at once, from the config, the sets and a file.
    f = tmp_path / "c.toml"
    f.write_text("[loop]\nevals = 3\n")
    with pytest.raises(la.ConfigError) as e:
        la.sac.run("Pendulum-v1", preset="demo", config={"sac": {"gama": 0.9, "tau": 2.0}},
                   sets=["loop.total_step=5", "sac.batch_size=0"], config_file=f, out=out, progress=False, ctx=ctx)
    for key in ("sac.gama", "sac.tau", "loop.total_step", "sac.batch_size", "loop.evals"):
        assert key in str(e.value), (key, str(e.value))
    assert not out.exists()
    for kw, exc, text in [
        (dict(overwrite=True, resume=True), ValueError, "exclude each other"),
        (dict(sets=["env=cartpole"]), ValueError, "env argument"),
        (dict(sets="sac.gamma=0.9"), TypeError, "list of 'key=value'"),
        (dict(resume=True), la.ConfigError, "never is not a run folder: there is nothing to resume"),
        (dict(preset="fast"), la.ConfigError, "known: reference, demo"),
    ]:
        with pytest.raises(exc, match=text):
            la.sac.run("Pendulum-v1", out=out, progress=False, ctx=ctx, **kw)
    with pytest.raises(ValueError, match="not a gymnasium id: the built-in environment is env='cartpole'"):
        la.sac.run("gymnasium:cartpole", progress=False, ctx=ctx)
    # The gymnasium schedule and the demo networks.
    text = la.sac.resolve("gymnasium:InvertedPendulum-v5", preset="reference")
    assert "random_steps = 5000" in text and "total_steps = 1000000" in text and "eval_every = 10000" in text


def test_second_ctrl_c_raises_at_once(ctx, tmp_path):
    before = signal.getsignal(signal.SIGINT)

    class Twice(gymnasium.Wrapper):
        calls = 0

        def step(self, action):
            Twice.calls += 1
            if Twice.calls == 30:  # two presses within one step (the first stops after it)
                signal.raise_signal(signal.SIGINT)
                signal.raise_signal(signal.SIGINT)
            return self.env.step(action)

    with pytest.raises(KeyboardInterrupt):
        la.sac.run(Twice(gymnasium.make("Pendulum-v1")), preset="demo", sets=SETS, out=tmp_path / "r",
                   progress=False, ctx=ctx)
    assert signal.getsignal(signal.SIGINT) is before


def test_command_line_exit_statuses(tmp_path):
    out = tmp_path / "r"
    for args, rc, texts in [
        (["--env", "gymnasium:pendulum"], 1, ["not a gymnasium id"]),
        (["--env", "gymnasium:NoSuchEnv-v0"], 1, ["error: NameNotFound"]),
        (["--env", "gymnasium:CartPole-v1"], 1, ["not a Box"]),
        (["--env", "gymnasium:Pendulum-v1", "--set", "sac.gama=1", "--set", "loop.x=2"], 1, ["sac.gama", "loop.x"]),
        (["--env", "gymnasium:Pendulum-v1", "--config", str(tmp_path / "missing.toml")], 1, ["FileNotFoundError"]),
        (["--env", "gymnasium:Pendulum-v1", "--overwrite", "--resume"], 2, ["not allowed with argument"]),
        (["--env", "gymnasium:Pendulum-v1", "--seed", "-1"], 2, ["a seed is an integer"]),
        (["--env", "gymnasium:Pendulum-v1", "--preset", "fast"], 2, ["invalid choice"]),
    ]:
        p = subprocess.run([sys.executable, "-m", "lookahead", "sac", *args, "--out", str(out)],
                           capture_output=True, text=True, timeout=300)
        ok = p.returncode == rc and all(t in p.stderr for t in texts) and "Traceback" not in p.stderr
        assert ok, (args, p.returncode, p.stderr)
    assert not out.exists()
