"""PETS on any environment with the engine's loop: the same config keys, presets and run folder
(config.toml, metrics.jsonl, results.csv, model.safetensors, learning_curve.svg, resume points)
as ``lookahead pets`` on the command line."""
from __future__ import annotations

import os
import sys
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from . import _lookahead as _lk
from . import gym as _gym
from ._signals import stopping_on_ctrl_c
from .core import Task, _config_json, _uint

PathLike = Union[str, "os.PathLike[str]"]


def _env_id(env: Any) -> Optional[str]:
    """The gymnasium id of ``env`` (an id, with or without ``gymnasium:``, or an env), or None."""
    if isinstance(env, str):
        return _gym.strip_prefix(env)
    spec = getattr(env, "spec", None)
    return getattr(spec, "id", None)


BUILTIN = ("cartpole", "pendulum")


def _is_builtin(env: Any) -> bool:
    """Whether ``env`` names one of the engine's built-in environments, which it steps itself."""
    return isinstance(env, str) and env in BUILTIN


def _refuse_builtin(env: Any) -> None:
    """A ValueError for a built-in environment's name where an environment from Python is
    needed: its bare name (a PETS replay, which the command line does) or its name written as a
    gymnasium id."""
    env_id = _env_id(env)
    if env_id not in BUILTIN:
        return
    if _is_builtin(env):
        hint = " (or gymnasium's Pendulum-v1, the same dynamics and reward, from Python)" if env_id == "pendulum" else ""
        raise ValueError(f"{env_id!r} is a built-in environment: replay its run with `lookahead eval RUN`{hint}")
    raise ValueError(f"{env!r} is not a gymnasium id: the built-in environment is env={env_id!r}")


def _read_config_file(path: PathLike) -> str:
    """A config file's text, refused (ConfigError) past the engine's limit before more than
    that is read (or parsed)."""
    with open(path, "rb") as f:
        data = f.read(_lk.MAX_CONFIG_BYTES + 1)
        size = max(os.fstat(f.fileno()).st_size, len(data))
        _lk.check_config_size(f"config_file {os.fspath(path)}", size)
    return data.decode("utf-8")


def _check_run_args(config: Optional[Mapping[str, Any]], sets: Sequence[str], overwrite: bool, resume: bool) -> None:
    """The contradictions a run refuses before any work, as the command line does: ``sets`` not
    a list, overwrite with resume, and the environment in the config (it is run's argument)."""
    if not isinstance(sets, (list, tuple)):
        raise TypeError(f"sets: {type(sets).__name__}; expected a list of 'key=value' strings")
    if overwrite and resume:
        raise ValueError("overwrite and resume exclude each other: resume continues the run in out, "
                         "overwrite replaces it")
    if "env" in (config or {}) or any(str(s).split("=", 1)[0].strip() == "env" for s in sets):
        raise ValueError("env: the environment is run's env argument; remove env from the config and sets")


def _prepare(env: Any, task: Optional[Task]):
    """(gymnasium id or None, the adapter the loop steps, the task) for ``env`` (an id or an env)."""
    _refuse_builtin(env)
    env_id = _env_id(env)
    genv = _gym.make(env) if isinstance(env, str) else env
    # The spaces first: a Discrete space cannot be planned whatever the task.
    adapter = _gym.GymAdapter(genv)
    if task is None:
        if env_id is None:
            raise ValueError("this environment has no gymnasium id: pass task=Task.custom(...)")
        task = _gym.task_for(env_id, genv)
    return env_id, adapter, task


def resolve(
    env: str,
    preset: str = "reference",
    config: Optional[Mapping[str, Any]] = None,
    config_file: Optional[PathLike] = None,
    sets: Sequence[str] = (),
) -> str:
    """The PETS config for an environment, resolved as ``lookahead pets`` resolves it.

    Parameters
    ----------
    env : str
        A built-in name (``"cartpole"``, ``"pendulum"``) or a gymnasium id (with or without
        ``gymnasium:``).
    preset : str
        ``"reference"`` or ``"demo"``.
    config : mapping, optional
        Settings by section (``{"planner": {"horizon": 30}, "seed": 1}``).
    config_file : str or os.PathLike, optional
        A TOML config file.
    sets : sequence of str
        ``key.path=value`` assignments, as ``--set`` on the command line.

    Returns
    -------
    str
        The config as TOML text: the preset, then ``config_file``, then the task's own settings,
        ``config`` and ``sets`` (a later one wins).

    Raises
    ------
    ConfigError
        For unknown keys (all of them at once, with their paths) and impossible settings.
    """
    name = _gym.strip_prefix(env)
    spec = _gym.TASKS.get(name)
    if env in ("cartpole", "pendulum"):
        base, task_sets = env, []
    elif spec is not None:
        base, task_sets = spec.base, spec.sets.get(preset, [])
    else:
        base, task_sets = "cartpole", []
    text = None if config_file is None else _read_config_file(config_file)
    from_config = None if config is None else _config_json(config)
    return _lk.resolve_config(base, preset, text, list(task_sets), from_config, list(sets))


def run(
    env: Any,
    task: Optional[Task] = None,
    preset: str = "reference",
    config: Optional[Mapping[str, Any]] = None,
    config_file: Optional[PathLike] = None,
    sets: Sequence[str] = (),
    out: Optional[PathLike] = None,
    overwrite: bool = False,
    resume: bool = False,
    seed: Optional[int] = None,
    progress: bool = True,
    ctx: Optional["_lk.Context"] = None,
) -> Dict[str, Any]:
    """Runs PETS on ``env`` with the engine's loop.

    Ctrl-C (on the main thread) stops the run within a second in every phase — after the
    current environment step, or during a model training after the current minibatch
    submission with the best weights kept — with every file consistent, and the result says
    ``interrupted``; ``resume=True`` continues it. A second Ctrl-C raises KeyboardInterrupt: at
    once while the environment's Python code runs, else when the run has stopped.

    Parameters
    ----------
    env : str or gymnasium.Env
        A built-in environment (``"cartpole"``, ``"pendulum"``: the engine steps it, as
        ``lookahead pets`` does), a gymnasium id (``"Pendulum-v1"``,
        ``"gymnasium:HalfCheetah-v5"``) or an environment with 1-D Box spaces.
    task : Task, optional
        The planning task; needed unless the environment is built in or its id has a built-in
        task.
    preset, config, config_file, sets
        The config, as for :func:`resolve` (without ``env``, which is this argument).
    out : str or os.PathLike, optional
        The run folder (config.toml, metrics.jsonl, results.csv, model.safetensors,
        learning_curve.svg, resume points); None writes nothing.
    overwrite : bool
        Replace an existing run folder.
    resume : bool
        Continue the run in ``out`` from its last resume point.
    seed : int, optional
        Overrides the config's seed.
    progress : bool
        Show the command line's progress bar.
    ctx : Context, optional
        The device; the best adapter when left out.

    Returns
    -------
    dict
        ``trials`` (dicts with trial, env_step, return, steps, model_loss, plan_ms, step_ms),
        ``interrupted``, ``stopped_at``, ``seconds`` and ``out_dir``.
    """
    _check_run_args(config, sets, overwrite, resume)
    if _is_builtin(env):
        if task is not None:
            raise ValueError(f"{env!r} is a built-in environment with its own task; leave task out")
        toml_text = resolve(env, preset, config, config_file, sets)
        native: Dict[str, Any] = {}
    else:
        env_id, adapter, task = _prepare(env, task)
        if (adapter.obs_dim, adapter.act_dim) != (task.obs_dim, task.act_dim):
            raise ValueError(
                f"the environment has obs {adapter.obs_dim} / act {adapter.act_dim}, the task {task.name} "
                f"has {task.obs_dim} / {task.act_dim}"
            )
        toml_text = resolve(env_id or task.name, preset, config, config_file, sets)
        native = dict(env=adapter, task=task._native, external_env=f"gymnasium:{env_id or task.name}")
    ctx = ctx or _lk.Context()
    kw = dict(native, out=None if out is None else os.fspath(out), overwrite=overwrite, resume=resume,
              seed=None if seed is None else _uint("seed", seed), progress=progress)
    return stopping_on_ctrl_c(lambda fds: _lk.run_pets(ctx, toml_text, signal_fds=fds, **kw))


def evaluate(run_dir: PathLike, env: Any, task: Optional[Task] = None, episodes: int = 5, seed: int = 0,
             ctx: Optional["_lk.Context"] = None) -> list:
    """Replays the checkpoint of a run on ``env``.

    Ctrl-C (on the main thread) stops the replay before the next environment step, prints the
    finished episodes' returns and their mean on stderr and raises KeyboardInterrupt.

    Parameters
    ----------
    run_dir : str or os.PathLike
        The run folder written by :func:`run`.
    env, task, ctx
        As for :func:`run`.
    episodes : int
        Episodes to play.
    seed : int
        The replay's seed.

    Returns
    -------
    list of float
        Each episode's return.

    Raises
    ------
    KeyboardInterrupt
        After Ctrl-C, once the finished episodes are printed.
    """
    _, adapter, task = _prepare(env, task)
    ctx = ctx or _lk.Context()
    n, s0 = _uint("episodes", episodes), _uint("seed", seed)
    args = (ctx, adapter, task._native, os.fspath(run_dir), n, s0)
    returns, interrupted = stopping_on_ctrl_c(lambda fds: _lk.evaluate_pets(*args, signal_fds=fds))
    if interrupted:
        _print_interrupted(run_dir, returns, n)
        raise KeyboardInterrupt
    return returns


def _print_interrupted(run_dir: PathLike, returns: List[float], episodes: int) -> None:
    """The finished episodes of an interrupted replay, on stderr (as ``lookahead eval``)."""
    if returns:
        mean = sum(returns) / len(returns)
        listed = " ".join(f"{r:.1f}" for r in returns)
        print(f"eval {os.fspath(run_dir)}: interrupted after {len(returns)} of {episodes} episodes: returns {listed} "
              f"(mean {mean:.1f})", file=sys.stderr)
    else:
        print(f"eval {os.fspath(run_dir)}: interrupted before the first episode ended", file=sys.stderr)
