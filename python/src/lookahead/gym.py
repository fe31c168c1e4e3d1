"""gymnasium integration: any environment with Box observation and action spaces drives the PETS
loop, and built-in tasks restate gymnasium's own reward and termination functions in WGSL for
the environments PETS is known for.

Each built-in task's functions read only the observations before and after a step and the
action, so some environments are made with their positions in the observation
(``exclude_current_positions_from_observation=False``): the forward reward is the change of the
x position over the step divided by the step's duration, exactly as gymnasium computes it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .core import Task

# Shared WGSL: the sum of squares of the first `n` actions.
_SQ = """
fn act_sq(act: array<f32, MAX_ACT>, n: u32) -> f32 {
    var s = 0.0;
    for (var i = 0u; i < n; i = i + 1u) {
        s = s + act[i] * act[i];
    }
    return s;
}
"""

_INVERTED_PENDULUM = """
// InvertedPendulum-v5: obs [x, θ, ẋ, θ̇]; 1 per step while |θ| ≤ 0.2 (terminated beyond, or on a
// non-finite observation), 0 on the terminating step.
fn ip_bad(v: f32) -> bool {
    return !(abs(v) <= 3.0e38);
}
fn env_terminated(act: array<f32, MAX_ACT>, next: array<f32, MAX_OBS>) -> bool {
    var bad = false;
    for (var d = 0u; d < 4u; d = d + 1u) {
        bad = bad || ip_bad(next[d]);
    }
    return bad || abs(next[1]) > 0.2;
}
fn env_reward(s: array<f32, MAX_OBS>, act: array<f32, MAX_ACT>, next: array<f32, MAX_OBS>) -> f32 {
    return select(1.0, 0.0, env_terminated(act, next));
}
"""

_HALF_CHEETAH = _SQ + """
// HalfCheetah-v5 with positions observed: obs[0] = x; reward = (x' − x) / dt − 0.1 Σ a², dt 0.05;
// never terminates.
fn env_terminated(act: array<f32, MAX_ACT>, next: array<f32, MAX_OBS>) -> bool {
    return false;
}
fn env_reward(s: array<f32, MAX_OBS>, act: array<f32, MAX_ACT>, next: array<f32, MAX_OBS>) -> f32 {
    return (next[0] - s[0]) / 0.05 - 0.1 * act_sq(act, 6u);
}
"""

_HOPPER = _SQ + """
// Hopper-v5 with positions observed: obs [x, z, angle, 3 joints, 6 velocities clipped to ±10].
// Healthy: z > 0.7, |angle| < 0.2 and obs[2..] within (−100, 100); terminated when not.
// reward = (x' − x) / dt + healthy' − 0.001 Σ a², dt 0.008.
fn hopper_healthy(o: array<f32, MAX_OBS>) -> bool {
    var ok = o[1] > 0.7 && o[2] > -0.2 && o[2] < 0.2;
    for (var d = 2u; d < 12u; d = d + 1u) {
        ok = ok && o[d] > -100.0 && o[d] < 100.0;
    }
    return ok;
}
fn env_terminated(act: array<f32, MAX_ACT>, next: array<f32, MAX_OBS>) -> bool {
    return !hopper_healthy(next);
}
fn env_reward(s: array<f32, MAX_OBS>, act: array<f32, MAX_ACT>, next: array<f32, MAX_OBS>) -> f32 {
    let healthy = select(0.0, 1.0, hopper_healthy(next));
    return (next[0] - s[0]) / 0.008 + healthy - 0.001 * act_sq(act, 3u);
}
"""

_REACHER = _SQ + """
// Reacher-v5: obs [cos q (2), sin q (2), target (2), q̇ (2), fingertip − target (2)];
// reward = −|fingertip − target| after the step − Σ a² (both weights 1 in v5); never terminates.
fn env_terminated(act: array<f32, MAX_ACT>, next: array<f32, MAX_OBS>) -> bool {
    return false;
}
fn env_reward(s: array<f32, MAX_OBS>, act: array<f32, MAX_ACT>, next: array<f32, MAX_OBS>) -> f32 {
    return -length(vec2<f32>(next[8], next[9])) - act_sq(act, 2u);
}
"""


@dataclass
class GymTask:
    """A gymnasium environment lookahead knows: how to make it, its WGSL task, and the PETS
    settings it is run with (``base``'s preset with ``sets`` applied).

    Parameters
    ----------
    env_id : str
        The gymnasium id.
    obs_dim, act_dim : int
        Observation and action sizes (of the environment made with ``make_kwargs``).
    wgsl : str or None
        ``env_reward`` and ``env_terminated`` in WGSL; None for a built-in task.
    builtin : str, optional
        The engine's built-in task standing for the environment.
    make_kwargs : dict
        Keyword arguments of ``gymnasium.make`` that the task needs.
    base : str
        The built-in environment whose preset the run starts from.
    sets : dict of str to list of str
        ``key=value`` settings for each preset.
    note : str
        What to know about the task.
    """

    env_id: str
    obs_dim: int
    act_dim: int
    wgsl: Optional[str]
    builtin: Optional[str] = None
    make_kwargs: Dict[str, Any] = field(default_factory=dict)
    base: str = "cartpole"
    sets: Dict[str, List[str]] = field(default_factory=dict)
    note: str = ""


TASKS: Dict[str, GymTask] = {
    "Pendulum-v1": GymTask(
        "Pendulum-v1", 3, 1, None, builtin="pendulum", base="pendulum",
        note="the built-in pendulum task: Pendulum-v1's dynamics, reward and bounds",
    ),
    "InvertedPendulum-v5": GymTask(
        "InvertedPendulum-v5", 4, 1, _INVERTED_PENDULUM,
        sets={"reference": ["loop.trial_length=1000", "loop.trials=10"], "demo": ["loop.trial_length=200"]},
    ),
    "HalfCheetah-v5": GymTask(
        "HalfCheetah-v5", 18, 6, _HALF_CHEETAH,
        make_kwargs={"exclude_current_positions_from_observation": False},
        # The PETS paper's settings: trials of 1000 steps, 5-7 × 4×200 ensemble (7 here),
        # horizon 30, CEM 350 × 20 particles × 5 iterations, the model retrained every trial.
        # TS∞: each particle keeps one member for the whole horizon, so a trajectory is one
        # consistent sample of one model (the propagation of the PETS authors' released code
        # and of mbrl-lib's PETS config).
        sets={
            "reference": [
                "loop.trial_length=1000", "loop.trials=20", "loop.freq_train_model=1000",
                "loop.initial_exploration_steps=5000", "planner.horizon=30", "planner.propagation=tsinf",
            ],
            "demo": [
                "loop.trial_length=200", "loop.trials=2", "loop.freq_train_model=200",
                "loop.initial_exploration_steps=200", "planner.horizon=10", "planner.propagation=tsinf",
            ],
        },
    ),
    "Hopper-v5": GymTask(
        "Hopper-v5", 12, 3, _HOPPER,
        make_kwargs={"exclude_current_positions_from_observation": False},
        sets={
            "reference": ["loop.trial_length=1000", "loop.freq_train_model=1000", "planner.horizon=30",
                          "planner.propagation=tsinf"],
            "demo": ["loop.trial_length=200", "loop.trials=2", "planner.horizon=10"],
        },
        note="health is judged on the observation, whose velocities gymnasium clips to ±10; the "
        "environment's own check uses the unclipped state (they differ only beyond ±100)",
    ),
    "Reacher-v5": GymTask(
        "Reacher-v5", 10, 2, _REACHER,
        sets={"reference": ["loop.trial_length=50", "loop.freq_train_model=50", "loop.trials=50"],
              "demo": ["loop.trial_length=50", "loop.trials=4"]},
    ),
}


def strip_prefix(env_id: str) -> str:
    """An environment id without its ``gymnasium:`` prefix.

    Parameters
    ----------
    env_id : str
        E.g. ``"gymnasium:HalfCheetah-v5"`` or ``"HalfCheetah-v5"``.

    Returns
    -------
    str
        E.g. ``"HalfCheetah-v5"``.
    """
    return env_id.split(":", 1)[1] if env_id.startswith("gymnasium:") else env_id


def make(env_id: str, **kwargs: Any):
    """``gymnasium.make`` with the keyword arguments lookahead's task for ``env_id`` needs.

    Parameters
    ----------
    env_id : str
        A gymnasium id, with or without ``gymnasium:``.
    **kwargs
        Further keyword arguments of ``gymnasium.make`` (they win over the task's).

    Returns
    -------
    gymnasium.Env
    """
    import gymnasium

    env_id = strip_prefix(env_id)
    spec = TASKS.get(env_id)
    kw = dict(spec.make_kwargs) if spec else {}
    kw.update(kwargs)
    return gymnasium.make(env_id, **kw)


def box_dims(env, finite_bounds: bool = True) -> Tuple[int, int, np.ndarray, np.ndarray]:
    """The sizes and action bounds of an environment with 1-D Box spaces.

    Parameters
    ----------
    env : gymnasium.Env
        The environment.
    finite_bounds : bool
        Refuse infinite action bounds here (the planner samples within them); False leaves them
        to the caller (SAC's loop refuses them, naming the environment).

    Returns
    -------
    obs_dim, act_dim : int
    low, high : numpy.ndarray of float64, shape (act_dim,)
        The action bounds.

    Raises
    ------
    TypeError
        For a space that is not a 1-D Box, naming it.
    ValueError
        For infinite action bounds, when ``finite_bounds``.
    """
    import gymnasium

    obs_space, act_space = env.observation_space, env.action_space
    for what, sp in (("observation", obs_space), ("action", act_space)):
        if not isinstance(sp, gymnasium.spaces.Box):
            raise TypeError(f"{what} space {sp} is not a Box: lookahead plans continuous 1-D Box spaces")
        if len(sp.shape) != 1:
            raise TypeError(f"{what} space has shape {sp.shape}: lookahead needs 1-D Box spaces (flatten it first)")
    lo = np.asarray(act_space.low, dtype=np.float64)
    hi = np.asarray(act_space.high, dtype=np.float64)
    if finite_bounds and not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise ValueError(f"action space {act_space} has infinite bounds: the planner samples within finite bounds")
    return obs_space.shape[0], act_space.shape[0], lo, hi


def task_for(env_id: str, env=None) -> Task:
    """lookahead's task for a gymnasium environment.

    Parameters
    ----------
    env_id : str
        A gymnasium id, with or without ``gymnasium:``.
    env : gymnasium.Env, optional
        The environment, whose action space gives the bounds and whose sizes are checked.

    Returns
    -------
    Task

    Raises
    ------
    ValueError
        For an id without a built-in task (listing the ids it knows) or sizes that differ.
    """
    env_id = strip_prefix(env_id)
    spec = TASKS.get(env_id)
    if spec is None:
        raise ValueError(
            f"no built-in task for {env_id!r} (known: {', '.join(sorted(TASKS))}); "
            "pass task=Task.custom(...) with WGSL env_reward / env_terminated"
        )
    if spec.builtin:
        return Task.builtin(spec.builtin)
    if env is not None:
        d, a, lo, hi = box_dims(env)
        if (d, a) != (spec.obs_dim, spec.act_dim):
            raise ValueError(f"{env_id}: the environment has obs {d} / act {a}, the task expects {spec.obs_dim} / {spec.act_dim}")
    else:
        lo, hi = -np.ones(spec.act_dim), np.ones(spec.act_dim)
    return Task.custom(env_id, spec.obs_dim, spec.act_dim, lo, hi, spec.wgsl)


class GymAdapter:
    """The object the PETS and SAC loops step: ``reset(seed) -> list`` and ``step(action) ->
    (obs, reward, terminated, truncated)``, over a gymnasium env with 1-D Box spaces.

    Parameters
    ----------
    env : gymnasium.Env
        The environment (see :func:`box_dims`).
    finite_bounds : bool
        As for :func:`box_dims`.
    """

    def __init__(self, env, finite_bounds: bool = True):
        self.env = env
        self.obs_dim, self.act_dim, self.low, self.high = box_dims(env, finite_bounds)

    def reset(self, seed: int) -> List[float]:
        """Starts an episode.

        Parameters
        ----------
        seed : int
            The episode's seed (taken modulo 2**63).

        Returns
        -------
        list of float
            The first observation.
        """
        obs, _info = self.env.reset(seed=int(seed % (2**63)))
        return np.asarray(obs, dtype=np.float64).ravel().tolist()

    def step(self, action: List[float]) -> Tuple[List[float], float, bool, bool]:
        """Steps the environment with ``action`` clipped to the action bounds.

        Parameters
        ----------
        action : list of float
            The action, act_dim values.

        Returns
        -------
        obs : list of float
        reward : float
        terminated, truncated : bool
        """
        a = np.clip(np.asarray(action, dtype=np.float64), self.low, self.high)
        obs, reward, terminated, truncated, _info = self.env.step(a.astype(self.env.action_space.dtype))
        return np.asarray(obs, dtype=np.float64).ravel().tolist(), float(reward), bool(terminated), bool(truncated)
