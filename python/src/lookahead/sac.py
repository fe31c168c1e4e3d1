"""SAC (Soft Actor-Critic) on any environment with 1-D Box spaces with the engine's loop: the
same config keys, presets and run folder (config.toml, metrics.jsonl, results.csv,
model.safetensors, learning_curve.svg, resume points) as ``lookahead sac`` on the command line,
and the deterministic policy of a run, on the CPU or on the GPU.

Environments given by id are made with ``gymnasium.make(id)`` and nothing else (SAC needs no
reward function of its own, so the observation is gymnasium's default one); pass an environment
object to make it otherwise, and replay a run on an environment made the same way.
"""
from __future__ import annotations

import json
import os
import re
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from . import _lookahead as _lk
from . import gym as _gym
from ._signals import stopping_on_ctrl_c
from .core import _array, _config_json, _uint
from .pets import (BUILTIN, PathLike, _check_run_args, _env_id, _is_builtin, _print_interrupted, _read_config_file,
                   _refuse_builtin)

__all__ = ["Policy", "evaluate", "resolve", "run"]


def _prepare(env: Any) -> Tuple[Optional[str], "_gym.GymAdapter", str]:
    """(gymnasium id or None, the adapter the loop steps, the environment's name in the run
    folder's config) for ``env`` (an id or an environment object)."""
    _refuse_builtin(env)
    env_id = _env_id(env)
    if isinstance(env, str):
        import gymnasium

        genv = gymnasium.make(env_id)
    else:
        genv = env
    # Infinite bounds reach the engine, which refuses them naming the environment.
    adapter = _gym.GymAdapter(genv, finite_bounds=False)
    name = f"gymnasium:{env_id}" if env_id else f"python:{type(getattr(genv, 'unwrapped', genv)).__name__}"
    return env_id, adapter, name


def resolve(
    env: Any,
    preset: str = "reference",
    config: Optional[Mapping[str, Any]] = None,
    config_file: Optional[PathLike] = None,
    sets: Sequence[str] = (),
) -> str:
    """The SAC config for an environment, resolved as ``lookahead sac`` resolves it, with the
    schedule of a gymnasium task.

    Parameters
    ----------
    env : str or gymnasium.Env
        A built-in environment (``"cartpole"``, ``"pendulum"``: the command line's schedule),
        a gymnasium id (with or without ``gymnasium:``) or an environment with 1-D Box spaces.
    preset : str
        ``"reference"`` (the SAC papers' settings: 2 × 256 networks, 10⁶ steps, 5 000 of them
        random, an evaluation every 10 000) or ``"demo"`` (2 × 64 networks, 15 000 steps, 1 000
        of them random, an evaluation every 2 500).
    config : mapping, optional
        Settings by section (``{"sac": {"gamma": 0.98}, "loop": {"total_steps": 50000},
        "seed": 1}``).
    config_file : str or os.PathLike, optional
        A TOML config file (sections ``[sac]`` and ``[loop]``, and ``seed``).
    sets : sequence of str
        ``key.path=value`` assignments, as ``--set`` on the command line.

    Returns
    -------
    str
        The config as TOML text: the preset, then ``config_file``, ``config`` and ``sets`` (a
        later one wins).

    Raises
    ------
    ConfigError
        For unknown keys (all of them at once, with their paths) and impossible settings.
    ValueError
        For ``env`` in ``config`` or ``sets``.
    """
    _check_run_args(config, sets, False, False)
    env_id = _env_id(env)
    spec = _gym.TASKS.get(env_id or "")
    # The built-in environment written as the config's `env`: the environment itself, or the
    # preset's base for a gymnasium one (whose name is the config's `external_env`).
    base = env if _is_builtin(env) else spec.base if spec is not None else "cartpole"
    text = None
    if config_file is not None:
        with open(config_file, encoding="utf-8") as f:
            text = f.read()
    from_config = None if config is None else _config_json(config)
    return _lk.resolve_sac_config(base, preset, text, from_config, list(sets), builtin=_is_builtin(env))


def _seed_of(toml_text: str) -> int:
    """The top-level ``seed`` of a resolved config's TOML text."""
    top = toml_text.split("\n[", 1)[0]
    m = re.search(r"^seed = (\d+)$", top, re.MULTILINE)
    if m is None:
        raise ValueError("the resolved config has no seed")
    return int(m.group(1))


def run(
    env: Any,
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
    """Runs SAC on ``env`` with the engine's loop: random steps, then every step the updates
    and the policy's next action in one GPU submission; an evaluation of the deterministic
    policy and a resume point at the end of the episode in which each evaluation falls due.

    Ctrl-C (on the main thread) stops the run after the current environment step with every
    file consistent, and the result says ``interrupted``; ``resume=True`` continues it from the
    last evaluation exactly as if it had not stopped. A second Ctrl-C raises KeyboardInterrupt:
    at once while the environment's Python code runs, else when the run has stopped.

    Parameters
    ----------
    env : str or gymnasium.Env
        A built-in environment (``"cartpole"``, ``"pendulum"``: the engine steps it, with the
        command line's schedule), a gymnasium id (``"InvertedPendulum-v5"``,
        ``"gymnasium:HalfCheetah-v5"``) or an environment with 1-D Box spaces and finite action
        bounds.
    preset, config, config_file, sets
        The config, as for :func:`resolve`.
    out : str or os.PathLike, optional
        The run folder (config.toml, metrics.jsonl, results.csv, model.safetensors,
        learning_curve.svg, resume points); None writes nothing.
    overwrite : bool
        Replace an existing run folder.
    resume : bool
        Continue the run in ``out`` from its last resume point (its last evaluation).
    seed : int, optional
        Overrides the config's seed.
    progress : bool
        Show the command line's progress bar.
    ctx : Context, optional
        The device; the best adapter when left out.

    Returns
    -------
    dict
        ``evals`` (one dict per evaluation with the columns of results.csv: env_step, episodes,
        eval_return, eval_std, train_return, critic_loss, actor_loss, alpha, entropy, seconds;
        NaN where nothing was measured since the previous evaluation), ``episodes`` (training
        episodes finished), ``env_steps``, ``interrupted``, ``stopped_at``, ``seconds`` and
        ``out_dir``.

    Raises
    ------
    InputError
        For infinite action bounds (naming the environment).
    ConfigError
        For unknown keys and impossible settings, and a resumed folder of another config.
    ValueError
        For overwrite with resume, or ``env`` in ``config`` or ``sets``.
    """
    _check_run_args(config, sets, overwrite, resume)
    native: Dict[str, Any] = {}
    if not _is_builtin(env):
        _, adapter, name = _prepare(env)
        native = dict(env=adapter, obs_dim=adapter.obs_dim, action_lower=adapter.low.tolist(),
                      action_upper=adapter.high.tolist(), external_env=name)
    toml_text = resolve(env, preset, config, config_file, sets)
    ctx = ctx or _lk.Context()
    kw = dict(native, out=None if out is None else os.fspath(out), overwrite=overwrite, resume=resume,
              seed=None if seed is None else _uint("seed", seed), progress=progress)
    return stopping_on_ctrl_c(lambda fds: _lk.run_sac(ctx, toml_text, signal_fds=fds, **kw))


def _run_config(run_dir: PathLike) -> Dict[str, Any]:
    """A run folder's config.toml as a dict."""
    path = os.path.join(os.fspath(run_dir), "config.toml")
    return json.loads(_lk.config_as_json(_read_config_file(path)))


def _replay(run_dir: PathLike, env: Any, episodes: int, seed: int, make: Callable[[str], Any]) -> List[float]:
    """The deterministic policy of a SAC or MBPO run replayed on ``env`` (left out: the run's own,
    a gymnasium id made with ``make``), on the CPU; Ctrl-C as :func:`evaluate` says."""
    n, s0 = _uint("episodes", episodes), _uint("seed", seed)
    if env is None or _is_builtin(env):
        cfg = _run_config(run_dir)
        ran_on = cfg.get("external_env") or cfg.get("env")
        if env is None and str(ran_on).startswith("gymnasium:"):
            env = ran_on
        elif env is None and ran_on not in BUILTIN:
            raise ValueError(f"{os.fspath(run_dir)} ran on {ran_on}: pass that environment as env")
        elif env is not None and env != ran_on:
            raise ValueError(f"{os.fspath(run_dir)} ran on {ran_on}, not on the built-in {env}")
    if env is None or _is_builtin(env):
        # The run's built-in environment, made by the engine.
        args: Tuple[Any, ...] = (None, 0, [], [])
    else:
        adapter = _gym.GymAdapter(make(env) if isinstance(env, str) else env, finite_bounds=False)
        args = (adapter, adapter.obs_dim, adapter.low.tolist(), adapter.high.tolist())
    call = (*args, os.fspath(run_dir), n, s0)
    returns, interrupted = stopping_on_ctrl_c(lambda fds: _lk.evaluate_sac(*call, signal_fds=fds))
    if interrupted:
        _print_interrupted(run_dir, returns, n)
        raise KeyboardInterrupt
    return returns


def _make_plain(env_id: str) -> Any:
    """``gymnasium.make(id)`` and nothing else: how :func:`run` makes an environment given by id."""
    import gymnasium

    return gymnasium.make(_gym.strip_prefix(env_id))


def evaluate(run_dir: PathLike, env: Any = None, episodes: int = 5, seed: int = 0) -> List[float]:
    """Replays the deterministic policy of a run, on the CPU.

    Ctrl-C (on the main thread) stops the replay before the next environment step, prints the
    finished episodes' returns and their mean on stderr and raises KeyboardInterrupt.

    Parameters
    ----------
    run_dir : str or os.PathLike
        The run folder written by :func:`run`.
    env : str or gymnasium.Env, optional
        The environment to play; left out, the run's own: its built-in environment, or the
        gymnasium id it ran on (made as :func:`run` makes it). An environment object must be one
        of the run's sizes and action bounds.
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
        With ``env`` left out, for a run on a Python environment without a gymnasium id; for a
        built-in environment the run did not run on.
    KeyboardInterrupt
        After Ctrl-C, once the finished episodes are printed.
    """
    return _replay(run_dir, env, episodes, seed, _make_plain)


_default_ctx: Optional["_lk.Context"] = None


def _context() -> "_lk.Context":
    """The best adapter's device, opened once for every :meth:`Policy.act_batch` without one."""
    global _default_ctx
    if _default_ctx is None:
        _default_ctx = _lk.Context()
    return _default_ctx


class Policy:
    """The deterministic policy of a SAC run: the actor's mean squashed into the run's action
    bounds, ``c + h·tanh(μ)``.

    Load it with :meth:`load`; :meth:`act` computes one action on the CPU in float64 (no GPU
    round trip: the real-time path), :meth:`act_batch` many in one GPU dispatch chain in float32.
    """

    def __init__(self, native: "_lk.SacPolicy"):
        self._native = native

    @classmethod
    def load(cls, path: PathLike) -> "Policy":
        """The policy of a run.

        Parameters
        ----------
        path : str or os.PathLike
            A run folder (or a distillation's), or its ``model.safetensors`` (``policy.safetensors``).

        Returns
        -------
        Policy

        Raises
        ------
        FileError
            For a missing file, or one whose checksum or contents are wrong.
        """
        p = os.fspath(path)
        if os.path.isdir(p):
            # A distillation's folder holds policy.safetensors, a run's model.safetensors.
            distilled = os.path.join(p, "policy.safetensors")
            p = distilled if os.path.exists(distilled) else os.path.join(p, "model.safetensors")
        return cls(_lk.SacPolicy.load(p))

    @property
    def obs_dim(self) -> int:
        """Observation width."""
        return self._native.obs_dim

    @property
    def act_dim(self) -> int:
        """Action width."""
        return self._native.act_dim

    def act(self, obs: Any) -> np.ndarray:
        """The action for one observation, on the CPU.

        Parameters
        ----------
        obs : array-like, shape (obs_dim,)
            The observation (float32 or float64, or numbers).

        Returns
        -------
        numpy.ndarray of float64, shape (act_dim,)

        Raises
        ------
        InputError
            For a non-finite observation.
        """
        return self._native.act(_array("obs", obs, (self.obs_dim,), np.float64))

    def act_batch(self, obs: Any, ctx: Optional["_lk.Context"] = None) -> np.ndarray:
        """The actions for n observations, on the GPU.

        Parameters
        ----------
        obs : array-like, shape (n, obs_dim)
            The observations, one per row.
        ctx : Context, optional
            The device; the best adapter (opened once) when left out.

        Returns
        -------
        numpy.ndarray of float32, shape (n, act_dim)
            Row i is :meth:`act` of row i within float32 rounding.

        Raises
        ------
        InputError
            For no rows, a non-finite observation, or more rows than one dispatch takes.
        """
        o = _array("obs", obs, (None, self.obs_dim), np.float64)
        return self._native.act_batch(ctx or _context(), o)

    def __repr__(self) -> str:
        return f"Policy(obs_dim={self.obs_dim}, act_dim={self.act_dim})"
