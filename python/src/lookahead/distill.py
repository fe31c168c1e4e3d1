"""Distilling a PETS run's planner into a policy network with DAgger (Nagabandi et al. 2018; Ross
et al. 2011), as ``lookahead distill`` on the command line: iteration 0 labels the planner's own
episodes with its actions; each later iteration runs the policy so far and labels every state it
visits with the planner's action over the run's learned ensemble (one batched plan per step for
the episodes side by side), then trains the policy on all labels (behaviour cloning on the GPU:
the SAC actor's network, the mean squared error of its deterministic action).

The folder (``RUN/distill`` by default) holds config.toml, metrics.jsonl, results.csv (per
iteration: labels, imitation loss, ``policy_return`` and ``planner_return`` on the same start
states), distill_curve.svg and policy.safetensors: a SAC checkpoint, which
``lookahead.sac.Policy.load`` acts with on the CPU and ``lookahead sac --init-policy`` fine-tunes.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Mapping, Optional, Sequence

from . import _lookahead as _lk
from . import gym as _gym
from ._signals import stopping_on_ctrl_c
from .core import Task, _config_json, _uint
from .pets import PathLike, _check_run_args, _read_config_file

__all__ = ["resolve", "run"]


def _sets(sets: Optional[Sequence[str]], iterations: Optional[int], episodes: Optional[int],
          mode: Optional[str], seed: Optional[int]) -> list:
    """``sets`` with the keyword arguments' assignments after them (they win)."""
    if sets is not None and not isinstance(sets, (list, tuple)):
        raise TypeError(f"sets: {type(sets).__name__}; expected a list of 'key=value' strings")
    out = list(sets or [])
    if iterations is not None:
        out.append(f"dagger.iterations={_uint('iterations', iterations)}")
    if episodes is not None:
        out.append(f"dagger.episodes={_uint('episodes', episodes)}")
    if mode is not None:
        out.append(f"dagger.mode={json.dumps(str(mode))}")
    if seed is not None:
        out.append(f"seed={_uint('seed', seed)}")
    return out


def _resolve_toml(config: Optional[Mapping[str, Any]], config_file: Optional[PathLike], sets: Sequence[str]) -> str:
    text = None if config_file is None else _read_config_file(config_file)
    from_config = None if config is None else _config_json(config)
    return _lk.resolve_distill_config(text, from_config, list(sets))


def resolve(config: Optional[Mapping[str, Any]] = None, config_file: Optional[PathLike] = None,
            sets: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """The distillation config (``[policy]``, ``[train]``, ``[dagger]``, ``seed``) as a dict:
    the defaults, then ``config_file``, ``config`` and ``sets`` (a later one wins).

    Raises
    ------
    ConfigError
        For unknown keys (all of them at once, with their paths) and impossible settings.
    """
    return json.loads(_lk.config_as_json(_resolve_toml(config, config_file, _sets(sets, None, None, None, None))))


def _run_env(run_dir: PathLike) -> str:
    """The environment the PETS run in ``run_dir`` ran on (``cartpole``, ``gymnasium:<id>``), or
    ``""`` for a folder without a config (the engine then says what the folder lacks)."""
    path = os.path.join(os.fspath(run_dir), "config.toml")
    if not os.path.isfile(path):
        return ""
    cfg = json.loads(_lk.config_as_json(_read_config_file(path)))
    return str(cfg.get("external_env") or cfg.get("env"))


def run(
    run_dir: PathLike,
    env: Any = None,
    task: Optional[Task] = None,
    out: Optional[PathLike] = None,
    iterations: Optional[int] = None,
    episodes: Optional[int] = None,
    mode: Optional[str] = None,
    config: Optional[Mapping[str, Any]] = None,
    config_file: Optional[PathLike] = None,
    sets: Optional[Sequence[str]] = None,
    overwrite: bool = False,
    resume: bool = False,
    seed: Optional[int] = None,
    progress: bool = True,
    ctx: Optional["_lk.Context"] = None,
) -> Dict[str, Any]:
    """Distils the planner of the PETS run in ``run_dir`` into a policy network.

    Ctrl-C (on the main thread) stops it at the next environment step or training submission
    with every file consistent; ``resume=True`` continues from the last finished iteration.

    Parameters
    ----------
    run_dir : str or os.PathLike
        A PETS run folder (``lookahead pets`` or ``lookahead.pets.run``).
    env : str or callable, optional
        Left out, the run's own environment: its built-in one, or the gymnasium id it ran on
        (made with ``lookahead.gym.make``). Else a gymnasium id, or a callable returning a new
        environment (one is made per episode run side by side).
    task : Task, optional
        The run's planning task, for an environment whose id has no built-in task.
    out : str or os.PathLike, optional
        The folder; ``RUN/distill`` when left out.
    iterations, episodes, mode, seed
        ``dagger.iterations``, ``dagger.episodes``, ``dagger.mode`` (``"dagger"`` or ``"bc"``)
        and ``seed``, over the config.
    config, config_file, sets
        The config, as for :func:`resolve`.
    overwrite, resume : bool
        Replace the folder's distillation, or continue it.
    progress : bool
        Show the command line's progress bar.
    ctx : Context, optional
        The device; the best adapter when left out.

    Returns
    -------
    dict
        ``iterations`` (one dict per iteration: ``iteration``, ``labels``, ``new_labels``,
        ``updates``, ``imitation_loss``, ``policy_return``, ``policy_std``, ``planner_return``,
        ``seconds``), ``planner_returns``, ``interrupted``, ``stopped_at``, ``seconds`` and
        ``out_dir``.

    Raises
    ------
    ConfigError
        For unknown keys and impossible settings, a folder that holds no PETS run, or a run on a
        Python environment without ``env``.
    ValueError
        For overwrite with resume.
    """
    _check_run_args(config, list(sets or []), overwrite, resume)
    toml_text = _resolve_toml(config, config_file, _sets(sets, iterations, episodes, mode, seed))
    cfg = json.loads(_lk.config_as_json(toml_text))
    ran_on = _run_env(run_dir)
    native: Dict[str, Any] = {}
    if env is not None or ran_on.startswith("gymnasium:") or task is not None:
        env = ran_on if env is None else env
        n = max(cfg["dagger"]["episodes"], cfg["dagger"]["eval_episodes"])
        make = (lambda: _gym.make(env)) if isinstance(env, str) else env
        if not callable(make):
            raise TypeError(f"env: {type(env).__name__}; expected a gymnasium id or a callable making an environment")
        adapters = [_gym.GymAdapter(make()) for _ in range(n)]
        if task is None:
            env_id = _gym.strip_prefix(env) if isinstance(env, str) else None
            if env_id is None:
                raise ValueError("an environment made by a callable needs its task: pass task=")
            task = _gym.task_for(env_id, adapters[0].env)
        a = adapters[0]
        native = dict(envs=adapters, obs_dim=a.obs_dim, task=task._native, action_lower=a.low.tolist(),
                      action_upper=a.high.tolist())
    ctx = ctx or _lk.Context()
    folder = os.path.join(os.fspath(run_dir), "distill") if out is None else os.fspath(out)
    kw = dict(native, out=folder, overwrite=overwrite, resume=resume, progress=progress)
    return stopping_on_ctrl_c(lambda fds: _lk.run_distill(ctx, os.fspath(run_dir), toml_text, signal_fds=fds, **kw))
