"""MBPO (model-based policy optimisation, Janner et al. 2019) with the engine's loop: SAC trained
on short branched rollouts of a probabilistic ensemble, with the same config keys, presets and
run folder (config.toml, metrics.jsonl with the model's events, results.csv, model.safetensors,
learning_curve.svg) as ``lookahead mbpo`` on the command line. The policy of a run is a SAC
actor: :class:`Policy` (``lookahead.sac.Policy``) loads it.

The model rollouts end where the task's WGSL termination says, and take its WGSL reward unless
``model.learned_reward``: a gymnasium environment needs a task, built in for the ids of
``lookahead.gym.TASKS`` (made with ``lookahead.gym.make``, the observation those tasks read) or
given as ``task=Task.custom(...)``. The built-in ``"cartpole"`` and ``"pendulum"`` run natively.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from . import _lookahead as _lk
from . import gym as _gym
from ._signals import stopping_on_ctrl_c
from .core import Task, _config_json, _uint
from .pets import PathLike, _check_run_args, _env_id, _is_builtin, _read_config_file
from .sac import Policy, _replay

__all__ = ["Policy", "evaluate", "resolve", "run"]


def _preset_base(env: Any) -> str:
    """The engine's name of the preset ``env`` starts from: the built-in name, or
    ``gymnasium:<id>`` (an empty id for an environment without one)."""
    if _is_builtin(env):
        return env
    return f"gymnasium:{_env_id(env) or ''}"


def _prepare(env: Any, task: Optional[Task]) -> Tuple["_gym.GymAdapter", Task, str]:
    """(the adapter the loop steps, the task of its rollouts, the environment's name in the run
    folder's config) for ``env`` (a gymnasium id or an environment object)."""
    env_id = _env_id(env)
    genv = _gym.make(env) if isinstance(env, str) else env
    # Infinite bounds reach the engine, which refuses them naming the environment.
    adapter = _gym.GymAdapter(genv, finite_bounds=False)
    if task is None:
        if env_id is None:
            raise ValueError("this environment has no gymnasium id: pass task=Task.custom(...) with its WGSL "
                             "env_reward / env_terminated")
        task = _gym.task_for(env_id, genv)
    if (adapter.obs_dim, adapter.act_dim) != (task.obs_dim, task.act_dim):
        raise ValueError(f"the environment has obs {adapter.obs_dim} / act {adapter.act_dim}, the task {task.name} "
                         f"has obs {task.obs_dim} / act {task.act_dim}")
    name = f"gymnasium:{env_id}" if env_id else f"python:{type(getattr(genv, 'unwrapped', genv)).__name__}"
    return adapter, task, name


def _resolve_toml(env: Any, preset: str, config: Optional[Mapping[str, Any]], config_file: Optional[PathLike],
                  sets: Sequence[str]) -> str:
    """The resolved config as TOML text (what the engine runs)."""
    text = None if config_file is None else _read_config_file(config_file)
    from_config = None if config is None else _config_json(config)
    return _lk.resolve_mbpo_config(_preset_base(env), preset, text, from_config, list(sets))


def resolve(
    env: Any,
    preset: str = "reference",
    config: Optional[Mapping[str, Any]] = None,
    config_file: Optional[PathLike] = None,
    sets: Optional[Sequence[str]] = None,
) -> Dict[str, Any]:
    """The MBPO config for an environment, resolved as ``lookahead mbpo`` resolves it.

    Parameters
    ----------
    env : str or gymnasium.Env
        ``"cartpole"`` or ``"pendulum"`` (built in), a gymnasium id (with or without
        ``gymnasium:``) or an environment object.
    preset : str
        ``"reference"`` (mbrl-lib's MBPO settings: its cartpole override for the built-in
        environments, its InvertedPendulum, HalfCheetah and Hopper overrides for those gymnasium
        tasks, HalfCheetah's for any other) or ``"demo"`` (5 × 2 × 64 ensemble with the task's
        reward, SAC 2 × 64, 3 000 steps).
    config : mapping, optional
        Settings by section (``{"rollout": {"freq_train_model": 100}, "sac": {"gamma": 0.98},
        "seed": 1}``).
    config_file : str or os.PathLike, optional
        A TOML config file (sections ``[model]``, ``[train]``, ``[sac]``, ``[rollout]`` and
        ``[loop]``, and ``seed``).
    sets : sequence of str, optional
        ``key.path=value`` assignments, as ``--set`` on the command line.

    Returns
    -------
    dict
        The config by section (as config.toml writes it): the preset, then ``config_file``,
        ``config`` and ``sets`` (a later one wins).

    Raises
    ------
    ConfigError
        For an unknown preset, unknown keys (all of them at once, with their paths) and
        impossible settings.
    ValueError
        For ``env`` in ``config`` or ``sets``.
    """
    sets = [] if sets is None else sets
    _check_run_args(config, sets, False, False)
    return json.loads(_lk.config_as_json(_resolve_toml(env, preset, config, config_file, sets)))


def run(
    env: Any,
    task: Optional[Task] = None,
    preset: str = "reference",
    config: Optional[Mapping[str, Any]] = None,
    config_file: Optional[PathLike] = None,
    sets: Optional[Sequence[str]] = None,
    out: Optional[PathLike] = None,
    overwrite: bool = False,
    resume: bool = False,
    seed: Optional[int] = None,
    progress: bool = True,
    ctx: Optional["_lk.Context"] = None,
) -> Dict[str, Any]:
    """Runs MBPO on ``env`` with the engine's loop: random steps; then every ``freq_train_model``
    steps the ensemble retrained on every real transition and a batch of branched rollouts of
    the policy through it, and every step SAC's updates on the model's transitions and the next
    action in one GPU submission; an evaluation of the deterministic policy every epoch.

    Ctrl-C (on the main thread) stops the run within a second (after the current environment
    step, or during a model training) with every file consistent, and the result says
    ``interrupted``. A second Ctrl-C raises KeyboardInterrupt: at once while the environment's
    Python code runs, else when the run has stopped. ``resume=True`` continues a run in ``out``
    from its last evaluation exactly as if it had not stopped (same config required).

    Parameters
    ----------
    env : str or gymnasium.Env
        ``"cartpole"`` or ``"pendulum"`` (the engine's own environments), a gymnasium id
        (``"InvertedPendulum-v5"``, ``"gymnasium:HalfCheetah-v5"``) or an environment with 1-D
        Box spaces and finite action bounds.
    task : Task, optional
        The WGSL reward and termination of the model rollouts; needed for an environment whose
        id has no built-in task (``lookahead.gym.TASKS``). Not for a built-in environment.
    preset, config, config_file, sets
        The config, as for :func:`resolve` (without ``env``, which is this argument).
    out : str or os.PathLike, optional
        The run folder (config.toml, metrics.jsonl, results.csv, model.safetensors,
        learning_curve.svg); None writes nothing.
    overwrite : bool
        Replace an existing run folder.
    resume : bool
        Continue the run in ``out`` from its last evaluation (the same config required).
    seed : int, optional
        Overrides the config's seed.
    progress : bool
        Show the command line's progress bar.
    ctx : Context, optional
        The device; the best adapter when left out.

    Returns
    -------
    dict
        As ``lookahead.sac.run``'s: ``evals`` (one dict per evaluation with the columns of
        results.csv, NaN where nothing was measured since the previous one), ``episodes``,
        ``env_steps``, ``interrupted``, ``stopped_at``, ``seconds`` and ``out_dir``.

    Raises
    ------
    InputError
        For infinite action bounds (naming the environment).
    ConfigError
        For unknown keys and impossible settings, and for ``resume`` of a folder that holds no
        MBPO run or one of another config.
    ValueError
        For overwrite with resume, ``env`` in ``config`` or ``sets``, an environment without a
        task, a task for a built-in environment, or a task of other sizes than the environment.
    """
    sets = [] if sets is None else sets
    _check_run_args(config, sets, overwrite, resume)
    toml_text = _resolve_toml(env, preset, config, config_file, sets)
    if _is_builtin(env):
        if task is not None:
            raise ValueError(f"{env!r} is a built-in environment with its own task; leave task out")
        native: Dict[str, Any] = {}
    else:
        adapter, task, name = _prepare(env, task)
        native = dict(env=adapter, obs_dim=adapter.obs_dim, task=task._native, action_lower=adapter.low.tolist(),
                      action_upper=adapter.high.tolist(), external_env=name)
    ctx = ctx or _lk.Context()
    kw = dict(native, out=None if out is None else os.fspath(out), overwrite=overwrite, resume=resume,
              seed=None if seed is None else _uint("seed", seed), progress=progress)
    return stopping_on_ctrl_c(lambda fds: _lk.run_mbpo(ctx, toml_text, signal_fds=fds, **kw))


def evaluate(run_dir: PathLike, env: Any = None, episodes: int = 5, seed: int = 0) -> List[float]:
    """Replays the deterministic policy of an MBPO run, on the CPU.

    Ctrl-C (on the main thread) stops the replay before the next environment step, prints the
    finished episodes' returns and their mean on stderr and raises KeyboardInterrupt.

    Parameters
    ----------
    run_dir : str or os.PathLike
        The run folder written by :func:`run`.
    env : str or gymnasium.Env, optional
        The environment to play; left out, the run's own: its built-in environment, or the
        gymnasium id it ran on (made with ``lookahead.gym.make``, as :func:`run` makes it). An
        environment object must be one of the run's sizes and action bounds.
    episodes : int
        Episodes to play, each at most the run's total steps long.
    seed : int
        The replay's seed.

    Returns
    -------
    list of float
        Each episode's return.

    Raises
    ------
    InputError
        For an environment of other sizes or action bounds than the run's.
    ValueError
        With ``env`` left out, for a run on a Python environment without a gymnasium id.
    KeyboardInterrupt
        After Ctrl-C, once the finished episodes are printed.
    """
    return _replay(run_dir, env, episodes, seed, _gym.make)
