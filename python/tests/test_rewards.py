"""Each built-in gymnasium task's WGSL reward and termination, run on the device, against the
reward gymnasium's own environment returned for the same recorded transitions."""
import numpy as np
import pytest

from lookahead import gym as lgym

import gymnasium


def record(env_id, steps, seed, policy_scale=1.0):
    """Transitions of random actions: (before, action, after, reward, terminated), resetting at
    episode ends, with actions spread over (and for some steps beyond) the bounds."""
    env = lgym.make(env_id)
    rng = np.random.default_rng(seed)
    lo, hi = env.action_space.low.astype(np.float64), env.action_space.high.astype(np.float64)
    obs, _ = env.reset(seed=seed)
    rows = []
    for _ in range(steps):
        a = rng.uniform(lo, hi) * policy_scale
        a = np.clip(a, lo, hi)
        nxt, r, term, trunc, _ = env.step(a.astype(env.action_space.dtype))
        rows.append((np.asarray(obs, np.float64), a, np.asarray(nxt, np.float64), float(r), bool(term)))
        obs = nxt
        if term or trunc:
            obs, _ = env.reset(seed=int(rng.integers(1 << 30)))
    env.close()
    b, a, n, r, t = (np.array([row[i] for row in rows]) for i in range(5))
    return b, a, n, r, t.astype(bool)


@pytest.mark.parametrize(
    "env_id,steps,min_terminal",
    [("Pendulum-v1", 400, 0), ("InvertedPendulum-v5", 400, 5), ("HalfCheetah-v5", 300, 0),
     ("Hopper-v5", 400, 5), ("Reacher-v5", 300, 0)],
)
def test_task_reward_matches_gymnasium_step_by_step(ctx, env_id, steps, min_terminal):
    before, act, after, reward, terminated = record(env_id, steps, seed=11)
    assert terminated.sum() >= min_terminal, f"{env_id}: only {terminated.sum()} terminations recorded"
    task = lgym.task_for(env_id, lgym.make(env_id))
    got_r, got_t = task.evaluate(ctx, before, act, after)
    np.testing.assert_array_equal(got_t, terminated, err_msg=f"{env_id}: terminated")
    # Observations cross as float32, so the forward terms (Δx / dt) carry its rounding.
    scale = np.maximum(1.0, np.abs(reward))
    err = np.abs(got_r - reward) / scale
    tol = 2e-4 if env_id in ("HalfCheetah-v5", "Hopper-v5") else 2e-5
    assert err.max() < tol, (
        f"{env_id}: worst reward {got_r[err.argmax()]} vs gymnasium {reward[err.argmax()]}"
    )
    # The tolerance is finer than the smallest term: leaving out the control cost (zero
    # actions) is told apart in every task that has one.
    if env_id != "InvertedPendulum-v5":
        off_r, _ = task.evaluate(ctx, before, np.zeros_like(act), after)
        assert (np.abs(off_r - reward) / scale).max() > 3 * tol, f"{env_id}: the comparison is blind to the action"


def test_unknown_ids_and_unsupported_spaces_are_refused():
    with pytest.raises(ValueError, match="no built-in task for 'CarRacing-v3'"):
        lgym.task_for("CarRacing-v3")
    with pytest.raises(TypeError, match="not a Box"):
        lgym.GymAdapter(gymnasium.make("CartPole-v1"))
