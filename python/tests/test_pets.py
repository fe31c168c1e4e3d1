"""PETS through the Python package on gymnasium environments: learning, the run folder, replay,
the `python -m lookahead` command line and a MuJoCo smoke run."""
import json
import subprocess
import sys

import gymnasium
import numpy as np
import pytest

import lookahead as la

# A demo-sized pendulum run that fits CI on lavapipe.
PENDULUM = [
    "loop.initial_exploration_steps=200", "loop.trials=3",
    "planner.population=60", "planner.particles=2", "planner.horizon=20", "planner.iterations=3",
]


def baseline_returns(policy, episodes, seed):
    """Returns of `policy` on Pendulum-v1 over `episodes` episodes started from the seeds the
    PETS loop uses, for margins against trivial policies."""
    env = gymnasium.make("Pendulum-v1")
    rng = np.random.default_rng(seed)
    out = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=1000 + ep)
        total, done = 0.0, False
        while not done:
            obs, r, term, trunc, _ = env.step(policy(obs, rng))
            total += r
            done = term or trunc
        out.append(total)
    return np.array(out)


def test_pets_learns_gymnasium_pendulum_and_writes_the_run_folder(ctx, tmp_path):
    out = tmp_path / "run"
    r = la.pets.run("Pendulum-v1", preset="demo", sets=PENDULUM, out=out, seed=0, progress=False, ctx=ctx)
    returns = [t["return"] for t in r["trials"]]
    assert len(returns) == 3 and not r["interrupted"], r
    random = baseline_returns(lambda o, g: g.uniform(-2, 2, size=1).astype(np.float32), 5, 0)
    nothing = baseline_returns(lambda o, g: np.zeros(1, np.float32), 5, 0)
    # Random actions score about −1200 and doing nothing about −900 to −1500 on these starts;
    # a learned model swings the pendulum up and holds it.
    assert returns[-1] > -400, f"last trial {returns[-1]:.1f}; random {random.mean():.1f}, nothing {nothing.mean():.1f}"
    assert returns[-1] > max(random.max(), nothing.max()) + 200
    for name in ("config.toml", "metrics.jsonl", "results.csv", "model.safetensors", "learning_curve.svg", "resume.json"):
        assert (out / name).exists(), name
    cfg = (out / "config.toml").read_text()
    assert 'external_env = "gymnasium:Pendulum-v1"' in cfg and "population = 60" in cfg
    events = [json.loads(line)["event"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert events.count("train") >= 3 and events[-1] == "end"
    # The checkpoint replays on the environment through the package.
    replay = la.pets.evaluate(out, "Pendulum-v1", episodes=2, ctx=ctx)
    assert len(replay) == 2 and all(np.isfinite(replay))
    # The same folder is refused without overwrite, and the command line cannot replay it.
    try:
        la.pets.run("Pendulum-v1", preset="demo", sets=PENDULUM, out=out, progress=False, ctx=ctx)
        raise AssertionError("a second run into the same folder was accepted")
    except la.LookaheadError as e:
        assert "overwrite" in str(e)


def test_environment_errors_reach_the_caller(ctx):
    class Broken(gymnasium.Wrapper):
        def step(self, action):
            raise RuntimeError("simulator exploded")

    env = Broken(gymnasium.make("Pendulum-v1"))
    try:
        la.pets.run(env, task=la.Task.builtin("pendulum"), preset="demo", sets=["loop.trials=1"], progress=False, ctx=ctx)
        raise AssertionError("the environment's exception was lost")
    except RuntimeError as e:
        assert "simulator exploded" in str(e)


def test_a_run_storing_more_transitions_than_the_device_trains_on_is_refused_before_exploring(ctx, tmp_path):
    """initial_exploration_steps + trials × trial_length transitions are checked against the
    device before the first step (5 000 000 exploration steps failed only after exploring)."""
    import time

    for s in ("loop.initial_exploration_steps=5000000000", "loop.trials=1000000000"):
        t0 = time.monotonic()
        try:
            la.pets.run("Pendulum-v1", preset="demo", sets=[s], out=tmp_path / "r", progress=False, ctx=ctx)
            raise AssertionError(f"{s} was accepted")
        except la.LimitError as e:
            assert "lower loop.initial_exploration_steps, loop.trials or loop.trial_length" in str(e), str(e)
        assert time.monotonic() - t0 < 20, f"{s}: refused after {time.monotonic() - t0:.1f} s"
        assert not (tmp_path / "r").exists()


def test_config_texts_past_one_mebibyte_are_refused_before_parsing(ctx, tmp_path):
    """Parsing TOML takes about a hundred times a document's size (a 50 MB array took 5.8 GB):
    a config file, a settings mapping or an assignment past 1 MiB is refused, naming it."""
    import pytest

    big = "[" + ", ".join(["8"] * (la.MAX_CONFIG_BYTES // 3 + 1)) + "]"
    path = tmp_path / "big.toml"
    path.write_text(f"[model]\nhidden = {big}\n")
    for call, key in [
        (lambda: la.pets.resolve("pendulum", config_file=path), "config_file"),
        (lambda: la.pets.resolve("pendulum", config={"model": {"hidden": [8] * la.MAX_CONFIG_BYTES}}), "config"),
        (lambda: la.pets.resolve("pendulum", sets=[f"model.hidden={big}"]), "model.hidden"),
        (lambda: la.Planner(ctx, la.Task.builtin("pendulum"), None, action_lower=[0.0] * la.MAX_CONFIG_BYTES), "config"),
    ]:
        with pytest.raises(la.ConfigError, match=key + ".*at most 1048576 bytes"):
            call()


def test_command_line_runs_halfcheetah_a_few_hundred_steps(tmp_path):
    out = tmp_path / "cheetah"
    sets = ["loop.trials=1", "loop.trial_length=150", "loop.initial_exploration_steps=150",
            "planner.population=24", "planner.particles=2", "planner.horizon=5", "planner.iterations=2",
            "model.members=2", "model.hidden=[32, 32]", "train.epochs=3", "train.num_elites=1"]
    cmd = [sys.executable, "-m", "lookahead", "pets", "--env", "gymnasium:HalfCheetah-v5", "--preset", "demo",
           "--out", str(out)]
    for s in sets:
        cmd += ["--set", s]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr
    assert "trial returns:" in p.stdout
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == 2, rows
    assert 'external_env = "gymnasium:HalfCheetah-v5"' in (out / "config.toml").read_text()
    # An unknown key is reported with its path, as on the Rust command line.
    bad = subprocess.run(cmd[:-2] + ["--out", str(tmp_path / "x"), "--set", "planner.populaton=3"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "planner.populaton" in bad.stderr


def test_builtin_names_and_bad_arguments_get_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match="replay its run with `lookahead eval RUN`"):
        la.pets.evaluate(tmp_path, "pendulum")
    with pytest.raises(ValueError, match="not a gymnasium id: the built-in environment is env='pendulum'"):
        la.pets.run("gymnasium:pendulum")
    for args, rc, text in [
        (["--env", "gymnasium:pendulum"], 1, "not a gymnasium id"),
        (["--env", "gymnasium:NoSuchEnv-v0"], 1, "error: NameNotFound"),
        (["--env", "gymnasium:CartPole-v1"], 1, "not a Box"),
        (["--env", "gymnasium:Pendulum-v1", "--config", str(tmp_path / "missing.toml")], 1, "FileNotFoundError"),
        (["--env", "gymnasium:Pendulum-v1", "--seed", "-1"], 2, "a seed is an integer"),
    ]:
        p = subprocess.run([sys.executable, "-m", "lookahead", "pets", *args, "--out", str(tmp_path / "r")],
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == rc and text in p.stderr and "Traceback" not in p.stderr, (args, p.stderr)


def test_command_line_interrupted_by_ctrl_c_resumes_to_the_uninterrupted_result(tmp_path):
    """The chunked long run (e.g. HalfCheetah on a lent GPU): SIGINT after the first trial, then
    --resume, gives the same trials as one uninterrupted run."""
    import signal
    import time

    sets = ["loop.trials=4", "loop.trial_length=400", "loop.initial_exploration_steps=100",
            "loop.freq_train_model=400", "planner.population=24", "planner.particles=2", "planner.horizon=5",
            "planner.iterations=2", "model.members=2", "model.hidden=[32, 32]", "train.epochs=3",
            "train.num_elites=1"]

    def cmd(out, *extra):
        c = [sys.executable, "-m", "lookahead", "pets", "--env", "gymnasium:HalfCheetah-v5", "--preset", "demo",
             "--out", str(out), *extra]
        for s in sets:
            c += ["--set", s]
        return c

    def trials(out):
        rows = (out / "results.csv").read_text().splitlines()[1:]
        return [tuple(float(v) for v in r.split(",")[:4]) for r in rows]

    whole = tmp_path / "whole"
    assert subprocess.run(cmd(whole), capture_output=True, text=True, timeout=900).returncode == 0
    expected = trials(whole)
    assert len(expected) == 4

    cut = tmp_path / "cut"
    p = subprocess.Popen(cmd(cut), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not ((cut / "results.csv").exists() and len(trials(cut)) >= 1):
        assert p.poll() is None and time.time() - t0 < 600, "the run ended before its first trial was written"
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 130 and "--resume" in err and "Traceback" not in err, (p.returncode, err[-2000:])
    done = trials(cut)
    assert 1 <= len(done) < 4, done
    r = subprocess.run(cmd(cut, "--resume"), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    got = trials(cut)
    assert len(got) == 4
    # Bit for bit: the resumed trials come back from the resume point exactly (serde_json's
    # float_roundtrip), the later ones are recomputed from the same state and streams.
    assert got == expected, (got, expected)


def test_ctrl_c_in_python_stops_the_run_after_the_step_and_a_second_raises(ctx, tmp_path):
    """SIGINT while pets.run works: the run returns interrupted with its files consistent (it
    raised KeyboardInterrupt out of the environment's step before); the handler is restored."""
    import signal
    import threading

    before = signal.getsignal(signal.SIGINT)
    sets = ["loop.trials=3", "loop.trial_length=60", "loop.initial_exploration_steps=20",
            "planner.population=16", "planner.particles=2", "planner.horizon=4", "model.members=2",
            "model.hidden=[16]", "train.epochs=2", "train.num_elites=1"]

    class Counting(gymnasium.Wrapper):
        steps = 0

        def step(self, action):
            Counting.steps += 1
            if Counting.steps == 40:  # the first planned steps: Ctrl-C from outside
                threading.Timer(0.0, lambda: signal.raise_signal(signal.SIGINT)).start()
            return self.env.step(action)

    env = Counting(gymnasium.make("Pendulum-v1"))
    r = la.pets.run(env, task=la.Task.builtin("pendulum"), preset="demo", sets=sets, out=tmp_path / "run",
                    progress=False, ctx=ctx)
    assert r["interrupted"] and r["stopped_at"], r
    assert signal.getsignal(signal.SIGINT) is before
    events = [json.loads(line)["event"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert events[-1] == "end", events
    # It resumes to the end.
    r = la.pets.run(gymnasium.make("Pendulum-v1"), task=la.Task.builtin("pendulum"), preset="demo", sets=sets,
                    out=tmp_path / "run", resume=True, progress=False, ctx=ctx)
    assert not r["interrupted"] and len(r["trials"]) == 3
    # A second Ctrl-C raises KeyboardInterrupt instead of waiting for the step to end.
    class Twice(gymnasium.Wrapper):
        steps = 0

        def step(self, action):
            Twice.steps += 1
            if Twice.steps == 30:  # two presses within one step (the first stops after it)
                signal.raise_signal(signal.SIGINT)
                signal.raise_signal(signal.SIGINT)
            return self.env.step(action)

    try:
        la.pets.run(Twice(gymnasium.make("Pendulum-v1")), task=la.Task.builtin("pendulum"), preset="demo",
                    sets=sets, out=tmp_path / "twice", progress=False, ctx=ctx)
        raise AssertionError("a second Ctrl-C did not raise")
    except KeyboardInterrupt:
        pass
    assert signal.getsignal(signal.SIGINT) is before
    # Contradictions the command line refuses are refused here too.
    for kw in [dict(overwrite=True, resume=True), dict(config={"env": "cartpole"}), dict(sets=["env=cartpole"])]:
        try:
            la.pets.run("Pendulum-v1", preset="demo", out=tmp_path / "x", progress=False, ctx=ctx, **kw)
            raise AssertionError(f"{kw} accepted")
        except ValueError:
            pass


class SigintAt(gymnasium.Wrapper):
    """Sends Ctrl-C (``sigint``, ``delay`` s later) at its ``at``-th step; stepped more than the
    bound after the signal, it raises, so a run that ignores Ctrl-C fails instead of running on."""

    def __init__(self, env, sigint, at, delay=0.0):
        super().__init__(env)
        self.sigint, self.at, self.delay, self.steps = sigint, at, delay, 0

    def step(self, action):
        self.steps += 1
        if self.steps == self.at:
            self.sigint.send(self.delay)
        since = self.sigint.since()
        if since is not None and since > self.sigint.BOUND + 1:
            raise RuntimeError(f"still stepped {since:.1f} s after Ctrl-C")
        return self.env.step(action)


def test_ctrl_c_stops_pets_run_within_seconds_in_exploration_and_training_and_evaluate(ctx, tmp_path, sigint, capsys):
    """SIGINT while the engine works: pets.run returns interrupted within seconds during the
    exploration (four million steps, what lavapipe could train on) and during a model training
    (3000 epochs), where no Python code runs; evaluate stops before the next step, prints the
    finished episodes and raises KeyboardInterrupt."""
    sets = ["loop.trials=1", "loop.trial_length=50", "planner.population=16", "planner.particles=2",
            "planner.horizon=4", "model.members=2", "model.hidden=[16]", "train.num_elites=1"]
    phases = [
        ("exploration", ["loop.initial_exploration_steps=4000000", "train.epochs=1"], 100, "exploration step"),
        ("training", ["loop.initial_exploration_steps=200", "train.epochs=3000"], 200, "training before trial 1"),
    ]
    for phase, extra, at, stopped_at in phases:
        sigint.sent = None
        env = SigintAt(gymnasium.make("Pendulum-v1"), sigint, at, delay=0.3)
        r = la.pets.run(env, task=la.Task.builtin("pendulum"), preset="demo", sets=sets + extra,
                        out=tmp_path / phase, progress=False, ctx=ctx)
        took = sigint.since()
        with capsys.disabled():
            print(f"pets.run, {phase}: returned {took:.3f} s after Ctrl-C")
        assert r["interrupted"] and r["stopped_at"].startswith(stopped_at), (phase, r)
        assert took < sigint.BOUND, f"{phase}: returned {took:.1f} s after Ctrl-C"
    # The interrupted training saved its checkpoint; its replay stops in the second episode.
    sigint.sent = None
    env = SigintAt(gymnasium.make("Pendulum-v1"), sigint, 52)
    with pytest.raises(KeyboardInterrupt):
        la.pets.evaluate(tmp_path / "training", env, task=la.Task.builtin("pendulum"), episodes=10**6, ctx=ctx)
    took = sigint.since()
    with capsys.disabled():
        print(f"pets.evaluate: KeyboardInterrupt {took:.3f} s after Ctrl-C")
    assert took < sigint.BOUND, f"evaluate: KeyboardInterrupt {took:.1f} s after Ctrl-C"
    err = capsys.readouterr().err
    assert "interrupted after 1 of 1000000 episodes: returns " in err and "(mean " in err, err
