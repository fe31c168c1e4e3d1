"""PETS on any environment with the engine's loop: the same config keys, presets and run folder
(config.toml, metrics.jsonl, results.csv, model.safetensors, learning_curve.svg, resume points)
as ``lookahead pets`` on the command line."""
from __future__ import annotations

import os
import signal
import threading
from typing import Any, Dict, Mapping, Optional, Sequence, Union

from . import _lookahead as _lk
from . import gym as _gym
from .core import Task, _toml_value, _uint

PathLike = Union[str, "os.PathLike[str]"]


def _sets(config: Optional[Mapping[str, Any]], sets: Sequence[str]) -> list:
    """``--set`` assignments from a nested dict ({"planner": {"horizon": 30}}) and a list."""
    out = []
    for section, values in (config or {}).items():
        if isinstance(values, Mapping):
            for k, v in values.items():
                out.append(f"{section}.{k}={_toml_value(v)}")
        else:
            out.append(f"{section}={_toml_value(values)}")
    return out + list(sets)


def _env_id(env: Any) -> Optional[str]:
    """The gymnasium id of ``env`` (an id, with or without ``gymnasium:``, or an env), or None."""
    if isinstance(env, str):
        return _gym.strip_prefix(env)
    spec = getattr(env, "spec", None)
    return getattr(spec, "id", None)


def _refuse_builtin(env_id: Optional[str]) -> None:
    if env_id in ("cartpole", "pendulum"):
        hint = " (or gymnasium's Pendulum-v1, the same dynamics and reward, from Python)" if env_id == "pendulum" else ""
        raise ValueError(
            f"{env_id!r} is a built-in environment of the command line: run `lookahead pets --env {env_id}`{hint}"
        )


def _prepare(env: Any, task: Optional[Task]):
    """(gymnasium id or None, the adapter the loop steps, the task) for ``env`` (an id or an env)."""
    env_id = _env_id(env)
    _refuse_builtin(env_id)
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
    """The PETS config for environment ``env`` (a built-in name or a gymnasium id) as TOML text:
    the preset, then the task's own settings, then ``config_file``, ``config`` and ``sets``."""
    name = _gym.strip_prefix(env)
    spec = _gym.TASKS.get(name)
    if env in ("cartpole", "pendulum"):
        base, task_sets = env, []
    elif spec is not None:
        base, task_sets = spec.base, spec.sets.get(preset, [])
    else:
        base, task_sets = "cartpole", []
    text = None
    if config_file is not None:
        with open(config_file, encoding="utf-8") as f:
            text = f.read()
    return _lk.resolve_config(base, preset, text, list(task_sets) + _sets(config, sets))


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
    """Runs PETS on ``env``: a gymnasium id (``"Pendulum-v1"``, ``"gymnasium:HalfCheetah-v5"``)
    or a ``gymnasium.Env`` with 1-D Box spaces (then ``task`` is needed unless its id is built in).

    Returns the trials (return, steps, model loss, plan and step milliseconds), whether it was
    interrupted and where, and the run folder. Ctrl-C (from the main thread's signal handler,
    installed for the run) stops the run after the current environment step with every file
    consistent — during a model training, at the first step after it — and the result says
    ``interrupted``; ``resume=True`` continues it. A second Ctrl-C raises KeyboardInterrupt: at once
    while the environment's Python code runs, else when the current step ends."""
    if not isinstance(sets, (list, tuple)):
        raise TypeError(f"sets: {type(sets).__name__}; expected a list of 'key=value' strings")
    if overwrite and resume:
        raise ValueError("overwrite and resume exclude each other: resume continues the run in out, "
                         "overwrite replaces it")
    if "env" in (config or {}) or any(str(s).split("=", 1)[0].strip() == "env" for s in sets):
        raise ValueError("env: the environment is run's env argument; remove env from the config and sets")
    env_id, adapter, task = _prepare(env, task)
    if (adapter.obs_dim, adapter.act_dim) != (task.obs_dim, task.act_dim):
        raise ValueError(
            f"the environment has obs {adapter.obs_dim} / act {adapter.act_dim}, the task {task.name} "
            f"has {task.obs_dim} / {task.act_dim}"
        )
    toml_text = resolve(env_id or task.name, preset, config, config_file, sets)
    ctx = ctx or _lk.Context()
    args = (ctx, adapter, task._native, toml_text, f"gymnasium:{env_id or task.name}",
            None if out is None else os.fspath(out), overwrite, resume,
            None if seed is None else _uint("seed", seed), progress)
    if threading.current_thread() is not threading.main_thread():
        return _lk.run_pets(*args)
    pressed = []

    def on_sigint(signum, frame):
        if pressed:
            raise KeyboardInterrupt
        pressed.append(signum)
        _lk.request_stop()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        return _lk.run_pets(*args)
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)


def evaluate(run_dir: PathLike, env: Any, task: Optional[Task] = None, episodes: int = 5, seed: int = 0,
             ctx: Optional["_lk.Context"] = None) -> list:
    """Replays the checkpoint of a run on ``env`` (as for :func:`run`): each episode's return."""
    _, adapter, task = _prepare(env, task)
    ctx = ctx or _lk.Context()
    n, s0 = _uint("episodes", episodes), _uint("seed", seed)
    return _lk.evaluate_pets(ctx, adapter, task._native, os.fspath(run_dir), n, s0)
