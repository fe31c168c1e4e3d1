"""The Python planner and the command line plan identically on the same seed and adapter."""
import csv
import subprocess

import numpy as np

import lookahead as la


def test_python_planner_reproduces_the_cli_mpc_episode_action_for_action(ctx, cli, tmp_path):
    traj = tmp_path / "t.csv"
    sets = ["planner.population=60", "planner.horizon=12", "planner.iterations=3"]
    cmd = [cli, "mpc", "--env", "pendulum", "--seed", "7", "--trajectory", str(traj)]
    for s in sets:
        cmd += ["--set", s]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(traj.open()))
    assert len(rows) == 200
    obs = np.array([[float(r[f"obs_{i}"]) for i in range(3)] for r in rows])
    actions = np.array([float(r["action_0"]) for r in rows])
    planner = la.Planner(ctx, la.Task.builtin("pendulum"), None, None,
                         population=60, horizon=12, iterations=3, particles=1, seed=7)
    mine = np.array([planner.plan(o).action[0] for o in obs[:40]])
    # Same kernels, same seed, same warm start from step to step: the same bits.
    np.testing.assert_array_equal(mine.astype(np.float32), actions[:40].astype(np.float32))
    # A different seed plans differently (the comparison can fail).
    other = la.Planner(ctx, la.Task.builtin("pendulum"), None, None,
                       population=60, horizon=12, iterations=3, particles=1, seed=8)
    assert other.plan(obs[0]).action[0] != np.float32(actions[0])


def _rows(path, drop=()):
    """A results.csv's rows without the timing columns `drop`."""
    return [{k: v for k, v in row.items() if k not in drop} for row in csv.DictReader(open(path))]


def test_builtin_runs_from_python_are_the_command_lines(ctx, cli, tmp_path):
    """`lookahead.pets.run("cartpole")` and `lookahead.sac.run("pendulum")` run the engine's own
    environments as `lookahead pets|sac --env …` does: the same results row for row (timings
    aside) and the same resolved config. Catches: the built-in path stepping another environment
    or a Python one, SAC given the gymnasium schedule instead of the command line's, the seed or
    the `config` settings not reaching the run."""
    pets_sets = {"loop": {"trials": 2, "trial_length": 30, "initial_exploration_steps": 60},
                 "train": {"epochs": 5, "num_elites": 1}, "model": {"members": 2, "hidden": [16, 16]},
                 "planner": {"population": 50, "particles": 2, "horizon": 5, "iterations": 2}}
    sac_sets = {"loop": {"total_steps": 300, "random_steps": 200, "eval_every": 100, "eval_episodes": 1}}
    for command, env, sets, timing in [("pets", "cartpole", pets_sets, ("plan_ms", "step_ms")),
                                       ("sac", "pendulum", sac_sets, ("seconds",))]:
        flat = [f"{sec}.{k}={v}" for sec, kv in sets.items() for k, v in kv.items()]
        cmd = [cli, command, "--env", env, "--preset", "demo", "--seed", "3", "--out", str(tmp_path / f"{command}-cli")]
        p = subprocess.run(cmd + [a for s in flat for a in ("--set", s)], capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stderr
        run = getattr(la, command).run
        run(env, preset="demo", config=sets, seed=3, out=tmp_path / f"{command}-py", progress=False, ctx=ctx)
        a, b = tmp_path / f"{command}-cli", tmp_path / f"{command}-py"
        assert _rows(a / "results.csv", timing) == _rows(b / "results.csv", timing), command
        assert (a / "config.toml").read_text() == (b / "config.toml").read_text(), command
    # The reference preset's schedule: the command line's for the built-in pendulum (the demo's
    # above is the same for both origins), the papers' for gymnasium's.
    assert "total_steps = 20000" in la.sac.resolve("pendulum") and "random_steps = 1000\n" in la.sac.resolve("pendulum")
    assert "total_steps = 1000000" in la.sac.resolve("gymnasium:Pendulum-v1")
