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
