"""The engine's objects with numpy arrays in and out.

Arrays may be float32 or float64 (anything else is a TypeError), of any memory layout; their
shapes are checked here with messages naming the argument. Values (NaN, infinity) and settings
are checked by the engine, whose errors arrive as :class:`LookaheadError` subclasses with the
engine's own messages. Every call that works on the GPU releases the GIL.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import _lookahead as _lk
from ._signals import signal_fds

PathLike = Union[str, "os.PathLike[str]"]


def _array(name: str, x: Any, shape: Sequence[Optional[int]], dtype: Any = np.float32) -> np.ndarray:
    """``x`` (a float32 or float64 array of any byte order and layout, or Python numbers and
    sequences of them) as the C-contiguous array of ``dtype`` (float32 unless the engine takes
    float64) the engine takes, once its type and its ``shape`` (None: any length) are checked,
    with errors naming the argument."""
    if isinstance(x, np.ndarray):
        a = x
        # float32 or float64 in either byte order; anything else is refused rather than cast.
        if a.dtype.kind != "f" or a.dtype.itemsize not in (4, 8):
            raise TypeError(f"{name}: dtype {a.dtype}; expected float32 or float64")
    else:
        # Python numbers and sequences of them (e.g. [1, 0, 0]); not strings, bools or objects.
        try:
            a = np.asarray(x)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{name}: {type(x).__name__} is not an array of numbers ({e})") from None
        if a.dtype.kind not in "iuf":
            raise TypeError(f"{name}: {type(x).__name__} of {a.dtype} values is not an array of numbers")
        a = a.astype(np.float64)
    dims = ["n" if s is None else str(s) for s in shape]
    want = "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"
    if a.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, a.shape)):
        raise ValueError(f"{name}: shape {a.shape}; expected {want}")
    return np.ascontiguousarray(a, dtype=dtype)


def _uint(name: str, v: Any) -> int:
    """`v` as an integer in 0..2**64 (a Python or numpy integer; bools and floats are refused),
    with errors naming the argument."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name}: {type(v).__name__} {v!r}; expected a non-negative integer")
    v = int(v)
    if not 0 <= v < 2**64:
        raise _lk.InputError(f"invalid input: {name} = {v} must be a non-negative integer below 2**64")
    return v


def _bounds(name: str, x: Any) -> List[float]:
    """A 1-D sequence of numbers as float64 values (bounds keep their double precision)."""
    a = np.asarray(x)
    if a.dtype.kind not in "iuf":
        raise TypeError(f"{name}: {a.dtype} values; expected numbers")
    if a.ndim != 1:
        raise ValueError(f"{name}: shape {a.shape}; expected one value per action dimension (act_dim,)")
    return [float(v) for v in a]


def _json_value(v: Any) -> Any:
    """numpy scalars and arrays, and mappings other than dicts, in a config as the Python values
    JSON writes (``json.dumps``'s ``default``)."""
    if isinstance(v, (np.generic, np.ndarray)):
        return v.tolist()
    if isinstance(v, Mapping):
        return dict(v)
    raise TypeError(f"config value {v!r}: expected a number, bool, string or list")


def _non_finite_keys(value: Any, key: str) -> List[str]:
    """The key paths (``planner.alpha``, ``model.hidden[1]``) under ``key`` whose value is NaN or
    an infinity."""
    if isinstance(value, Mapping):
        return [k for name, v in value.items() for k in _non_finite_keys(v, f"{key}.{name}" if key else str(name))]
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [k for i, v in enumerate(value) for k in _non_finite_keys(v, f"{key}[{i}]")]
    if isinstance(value, (float, np.floating)) and not math.isfinite(float(value)):
        return [key]
    return []


def _config_json(config: Mapping[str, Any]) -> str:
    """``config`` (settings by key, sections as nested mappings) as the JSON object the engine
    reads and checks key by key, as ``--set`` on the command line; numpy values are written as
    their Python equivalents, and NaN or an infinity (which no setting takes) is a ConfigError
    naming every such key."""
    bad = _non_finite_keys(config, "")
    if bad:
        raise _lk.ConfigError(f"{', '.join(bad)}: must be finite (settings are finite numbers, bools, strings and lists)")
    return json.dumps(config, default=_json_value, allow_nan=False)


def _section(config: Optional[Mapping[str, Any]], overrides: Mapping[str, Any]) -> str:
    """A config section (``config`` updated with ``overrides``) as the engine's JSON object: flat
    keys such as ``horizon`` or ``lr``; unknown keys and wrong types are reported by the engine,
    naming the key, as for ``--set`` on the command line."""
    cfg: Dict[str, Any] = dict(config or {})
    cfg.update(overrides)
    for k, v in cfg.items():
        if not isinstance(k, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k):
            raise ValueError(f"config key {k!r}: expected a plain name such as horizon or lr")
        if isinstance(v, Mapping):
            raise TypeError(f"config key {k!r}: these settings are flat keys (horizon=30), not sections")
    return _config_json(cfg)


Context = _lk.Context
adapters = _lk.adapters


class Task:
    """What a planner needs to know about a problem: sizes, action bounds and the WGSL
    functions ``env_reward`` and ``env_terminated`` (and ``env_step`` for planning with the
    true dynamics). Made with :meth:`builtin` or :meth:`custom`."""

    def __init__(self, native: "_lk.Task"):
        self._native = native

    @staticmethod
    def builtin(name: str) -> "Task":
        """A built-in task.

        Parameters
        ----------
        name : str
            ``"cartpole"`` or ``"pendulum"`` (Pendulum-v1's dynamics and reward).

        Returns
        -------
        Task
        """
        return Task(_lk.Task.builtin(name))

    @staticmethod
    def custom(
        name: str,
        obs_dim: int,
        act_dim: int,
        action_lower: Sequence[float],
        action_upper: Sequence[float],
        wgsl: str,
        has_dynamics: bool = False,
    ) -> "Task":
        """A task from WGSL source; see the repository's README ("Custom tasks") for the
        function signatures. Sizes and bounds are checked now, the WGSL when a planner is made.

        Parameters
        ----------
        name : str
            The task's name (in messages and shader labels).
        obs_dim, act_dim : int
            Observation and action sizes.
        action_lower, action_upper : sequence of float
            The bounds of each action dimension (kept in double precision).
        wgsl : str
            WGSL defining ``env_reward`` and ``env_terminated`` (and ``env_step``).
        has_dynamics : bool
            Whether ``wgsl`` defines ``env_step``, the true dynamics a planner can use instead
            of an ensemble.

        Returns
        -------
        Task
        """
        lo, hi = _bounds("action_lower", action_lower), _bounds("action_upper", action_upper)
        return Task(
            _lk.Task.custom(name, _uint("obs_dim", obs_dim), _uint("act_dim", act_dim), lo, hi, wgsl, has_dynamics)
        )

    name = property(lambda self: self._native.name)
    obs_dim = property(lambda self: self._native.obs_dim)
    act_dim = property(lambda self: self._native.act_dim)
    action_lower = property(lambda self: np.asarray(self._native.action_lower))
    action_upper = property(lambda self: np.asarray(self._native.action_upper))
    wgsl = property(lambda self: self._native.wgsl)

    def evaluate(self, ctx: "_lk.Context", before: Any, action: Any, after: Any) -> Tuple[np.ndarray, np.ndarray]:
        """The task's WGSL reward and termination on ``n`` transitions, run on the device.

        Parameters
        ----------
        ctx : Context
            The device.
        before : array-like, shape (n, obs_dim)
            Observations before each step.
        action : array-like, shape (n, act_dim)
            The actions taken.
        after : array-like, shape (n, obs_dim)
            Observations after each step.

        Returns
        -------
        rewards : numpy.ndarray of float32, shape (n,)
        terminated : numpy.ndarray of bool, shape (n,)
        """
        b = _array("before", before, (None, self.obs_dim))
        n = b.shape[0]
        a = _array("action", action, (n, self.act_dim))
        s = _array("after", after, (n, self.obs_dim))
        return self._native.evaluate(ctx, b, a, s)

    def __repr__(self) -> str:
        return repr(self._native)


class Ensemble:
    """A probabilistic ensemble of MLPs (weights, biases, input normaliser, log-variance bounds).
    Made with :meth:`random` or :meth:`load`, or by a :class:`Trainer`."""

    def __init__(self, native: "_lk.Ensemble"):
        self._native = native

    @staticmethod
    def random(
        obs_dim: int,
        act_dim: int,
        members: int = 7,
        hidden: Sequence[int] = (200, 200, 200, 200),
        seed: int = 0,
        probabilistic: bool = True,
        learned_reward: bool = False,
    ) -> "Ensemble":
        """A randomly initialised ensemble (PETS's architecture by default).

        Parameters
        ----------
        obs_dim, act_dim : int
            Observation and action sizes.
        members : int
            Networks in the ensemble.
        hidden : sequence of int
            The hidden layers' widths.
        seed : int
            Seed of the initialisation.
        probabilistic : bool
            Whether each network predicts a variance as well as a mean.
        learned_reward : bool
            Whether the networks predict the reward too.

        Returns
        -------
        Ensemble
        """
        sizes = [_uint("obs_dim", obs_dim), _uint("act_dim", act_dim), _uint("members", members)]
        widths = [_uint(f"hidden[{i}]", w) for i, w in enumerate(hidden)]
        return Ensemble(_lk.Ensemble.random(*sizes, widths, _uint("seed", seed), probabilistic, learned_reward))

    @staticmethod
    def load(path: PathLike) -> "Ensemble":
        """Reads an ensemble file or a training checkpoint (safetensors; checksums verified).

        Parameters
        ----------
        path : str or os.PathLike
            The file.

        Returns
        -------
        Ensemble
        """
        return Ensemble(_lk.Ensemble.load(os.fspath(path)))

    def save(self, path: PathLike) -> None:
        """Writes the ensemble as safetensors (atomically).

        Parameters
        ----------
        path : str or os.PathLike
            The file, replaced if it exists.
        """
        self._native.save(os.fspath(path))

    def select_members(self, members: Sequence[int]) -> "Ensemble":
        """The ensemble of some members (e.g. the elites).

        Parameters
        ----------
        members : sequence of int
            The members' indices, in the order the new ensemble keeps them.

        Returns
        -------
        Ensemble
        """
        return Ensemble(self._native.select_members([_uint(f"members[{i}]", m) for i, m in enumerate(members)]))

    @property
    def spec(self) -> Dict[str, Any]:
        """The architecture.

        Returns
        -------
        dict
            members, obs_dim, act_dim, hidden, probabilistic, learned_reward.
        """
        return self._native.spec()

    def arrays(self) -> Dict[str, Any]:
        """Every parameter as numpy float32 arrays, enough to rebuild the network in PyTorch.

        Returns
        -------
        dict
            ``layers``: list of (weight (members, in, out), bias (members, out)); ``input_mean``,
            ``input_std``: the input normaliser; ``max_logvar``, ``min_logvar``: the bounds of
            the predicted log-variance.
        """
        return self._native.arrays()

    def __repr__(self) -> str:
        return repr(self._native)


@dataclass
class Plan:
    """One plan: the action to execute now, the whole optimised sequence and its predicted
    return (mean over the elites' particles)."""

    #: The first action of the plan, float32 (act_dim,).
    action: np.ndarray
    #: The optimised sequence, float32 (horizon, act_dim).
    actions: np.ndarray
    predicted_return: float
    best_return: float
    iterations: int
    iterations_done: Optional[int] = None
    timed_out: Optional[bool] = None
    #: "complete", "budget", "converged" or "degraded: <reason>" (plan_with only).
    status: Optional[str] = None
    elapsed_s: Optional[float] = None


class Planner:
    """CEM / random shooting / MPPI / iCEM over an ensemble, or over the task's own WGSL
    dynamics.

    Parameters
    ----------
    ctx : Context
        The device.
    task : Task
        What to plan for.
    ensemble : Ensemble, optional
        The dynamics model; None plans with the task's own WGSL dynamics.
    config : mapping, optional
        The ``[planner]`` keys of a PETS config (kind, horizon, iterations, population,
        particles, propagation, mlp_kernel, model_step, seed, ...).
    **overrides
        Keys that override ``config``'s.

    Raises
    ------
    ConfigError
        For unknown keys (all of them at once) and impossible settings.
    """

    def __init__(
        self,
        ctx: "_lk.Context",
        task: Task,
        ensemble: Optional[Ensemble] = None,
        config: Optional[Mapping[str, Any]] = None,
        **overrides: Any,
    ):
        self.task = task
        native_ens = ensemble._native if ensemble is not None else None
        self._native = _lk.Planner(ctx, task._native, native_ens, _section(config, overrides))

    @staticmethod
    def _plan(d: Dict[str, Any]) -> Plan:
        return Plan(**d)

    def plan(self, obs: Any) -> Plan:
        """Plans from one observation.

        Parameters
        ----------
        obs : array-like, shape (obs_dim,)
            The observation (float32 or float64, or numbers).

        Returns
        -------
        Plan
        """
        o = _array("obs", obs, (self.task.obs_dim,))
        return self._plan(self._native.plan(o))

    def plan_batch(self, obs: Any) -> List[Plan]:
        """Plans from n observations in the same dispatches; each keeps its own warm start.

        Parameters
        ----------
        obs : array-like, shape (n, obs_dim)
            The observations.

        Returns
        -------
        list of Plan
            One per observation, in order.
        """
        o = _array("obs", obs, (None, self.task.obs_dim))
        return [self._plan(d) for d in self._native.plan_batch(o)]

    def plan_with(self, obs: Any, iterations: Optional[int] = None, seconds: Optional[float] = None) -> Plan:
        """A plan within a budget: give exactly one of ``iterations`` and ``seconds``.

        Parameters
        ----------
        obs : array-like, shape (obs_dim,)
            The observation.
        iterations : int, optional
            At most this many CEM iterations.
        seconds : float, optional
            Return within this long, with the best of the iterations that fitted.

        Returns
        -------
        Plan
            With iterations_done, timed_out, status and elapsed_s set.
        """
        o = _array("obs", obs, (self.task.obs_dim,))
        its = None if iterations is None else _uint("iterations", iterations)
        return self._plan(self._native.plan_with(o, its, seconds))

    def reset(self) -> None:
        """Forgets the warm start (call at the start of an episode)."""
        self._native.reset()

    def set_ensemble(self, ensemble: Ensemble) -> None:
        """Replaces the ensemble's parameters, e.g. after training.

        Parameters
        ----------
        ensemble : Ensemble
            Parameters of the same architecture.
        """
        if not isinstance(ensemble, Ensemble):
            raise TypeError(f"ensemble: {type(ensemble).__name__}; expected a lookahead.Ensemble")
        self._native.set_ensemble(ensemble._native)

    @property
    def config(self) -> Dict[str, Any]:
        """The resolved settings.

        Returns
        -------
        dict
            Every ``[planner]`` key with its value.
        """
        return json.loads(self._native.config_json())

    @property
    def network_kernel(self) -> Optional[str]:
        """The kernel running the network on this adapter.

        Returns
        -------
        str or None
            "fused", "tiled", "rows" or "coop16"; None for analytic dynamics.
        """
        return self._native.network_kernel()

    @property
    def model_step(self) -> Optional[str]:
        """How a model step is dispatched.

        Returns
        -------
        str or None
            "fused" (the network and the particles' step in one dispatch) or "split" (the
            network, then the particles' step); None for analytic dynamics.
        """
        return self._native.model_step()


def _transitions(d: int, a: int, obs: Any, action: Any, next_obs: Any, reward: Any, terminated: Any):
    """n transitions as the engine's arrays: (obs, act, next, reward float32, terminated bool);
    a single transition may be given as 1-D arrays."""
    o = np.asarray(obs)
    if o.ndim == 1:
        obs, action, next_obs = o[None, :], np.asarray(action)[None, :], np.asarray(next_obs)[None, :]
        reward = None if reward is None else np.asarray(reward, dtype=np.float64).reshape(1)
        terminated = None if terminated is None else np.asarray(terminated).reshape(1)
    o = _array("obs", obs, (None, d))
    n = o.shape[0]
    act = _array("action", action, (n, a))
    nxt = _array("next_obs", next_obs, (n, d))
    r = _array("reward", np.zeros(n) if reward is None else reward, (n,))
    t = np.zeros(n, dtype=bool) if terminated is None else np.asarray(terminated)
    if t.shape != (n,):
        raise ValueError(f"terminated: shape {t.shape}; expected ({n},)")
    if t.dtype != bool:
        # 0/1 integers are accepted; anything else (strings, NaN, None) is refused.
        if t.dtype.kind not in "iu" or not np.isin(t, (0, 1)).all():
            raise TypeError(f"terminated: dtype {t.dtype}; expected bool (or 0/1 integers)")
    return o, act, nxt, r, np.ascontiguousarray(t, dtype=bool)


class ReplayBuffer:
    """Transitions for training (obs, action, next_obs, reward, terminated); every value is
    checked on the way in and a refused batch stores nothing.

    Parameters
    ----------
    obs_dim, act_dim : int
        Observation and action sizes (at least 1).
    """

    def __init__(self, obs_dim: int, act_dim: int, _native: Optional["_lk.ReplayBuffer"] = None):
        self._native = _native if _native is not None else _lk.ReplayBuffer(_uint("obs_dim", obs_dim), _uint("act_dim", act_dim))

    @staticmethod
    def load(path: PathLike, obs_dim: int, act_dim: int) -> "ReplayBuffer":
        """Reads a buffer written by :meth:`save` or a PETS run folder's ``replay.*.safetensors``.

        Parameters
        ----------
        path : str or os.PathLike
            The file.
        obs_dim, act_dim : int
            The sizes the file must have.

        Returns
        -------
        ReplayBuffer
        """
        d, a = _uint("obs_dim", obs_dim), _uint("act_dim", act_dim)
        return ReplayBuffer(d, a, _lk.ReplayBuffer.load(os.fspath(path), d, a))

    def add(self, obs: Any, action: Any, next_obs: Any, reward: Any = None, terminated: Any = None) -> None:
        """Appends one transition (1-D arrays and scalars) or n of them; all or none are stored.

        Parameters
        ----------
        obs : array-like, shape (n, obs_dim) or (obs_dim,)
            Observations before each step.
        action : array-like, shape (n, act_dim) or (act_dim,)
            The actions taken.
        next_obs : array-like, shape (n, obs_dim) or (obs_dim,)
            Observations after each step.
        reward : array-like, shape (n,) or scalar, optional
            The rewards (zeros when left out).
        terminated : array-like of bool (or 0/1), shape (n,) or scalar, optional
            Whether each step ended its episode (False when left out).
        """
        self._native.extend(*_transitions(self.obs_dim, self.act_dim, obs, action, next_obs, reward, terminated))

    def save(self, path: PathLike) -> None:
        """Writes the buffer as safetensors (atomically).

        Parameters
        ----------
        path : str or os.PathLike
            The file, replaced if it exists.
        """
        self._native.save(os.fspath(path))

    obs_dim = property(lambda self: self._native.obs_dim)
    act_dim = property(lambda self: self._native.act_dim)

    def __len__(self) -> int:
        return len(self._native)


class Trainer:
    """Trains an ensemble (bootstrap, Gaussian NLL, Adam, early stopping, elites).

    Parameters
    ----------
    ctx : Context
        The device.
    ensemble : Ensemble
        The starting parameters (copied).
    config : mapping, optional
        The ``[train]`` keys of a PETS config. Without a ``num_elites`` key, the elites are
        min(5, members) (the engine's default of 5 is PETS's, for 7 members).
    **overrides
        Keys that override ``config``'s.

    Raises
    ------
    ConfigError
        For unknown keys (all of them at once) and impossible settings.
    """

    def __init__(
        self,
        ctx: "_lk.Context",
        ensemble: Ensemble,
        config: Optional[Mapping[str, Any]] = None,
        **overrides: Any,
    ):
        self._spec = ensemble.spec
        if "num_elites" not in (config or {}) and "num_elites" not in overrides:
            overrides = {**overrides, "num_elites": min(5, self._spec["members"])}
        self._native = _lk.Trainer(ctx, ensemble._native, _section(config, overrides))

    @staticmethod
    def load_checkpoint(ctx: "_lk.Context", path: PathLike, config: Optional[Mapping[str, Any]] = None) -> "Trainer":
        """Resumes training from a checkpoint written by :meth:`save_checkpoint`.

        Parameters
        ----------
        ctx : Context
            The device.
        path : str or os.PathLike
            The checkpoint.
        config : mapping, optional
            ``[train]`` keys replacing the saved settings (over the defaults); None keeps the
            saved ones.

        Returns
        -------
        Trainer
        """
        t = Trainer.__new__(Trainer)
        t._native = _lk.Trainer.load_checkpoint(ctx, os.fspath(path), None if config is None else _section(config, {}))
        t._spec = Ensemble(t._native.ensemble()).spec
        return t

    def train(
        self,
        obs: Any,
        action: Any = None,
        next_obs: Any = None,
        reward: Any = None,
        terminated: Any = None,
    ) -> Dict[str, Any]:
        """Trains on a :class:`ReplayBuffer`, or on n transitions given as arrays.

        Ctrl-C (on the main thread) stops the training within a second, after the current
        minibatch submission, keeping the best weights seen as early stopping does (before the
        first scores, nothing changes), then raises KeyboardInterrupt; the trainer stays usable.

        Parameters
        ----------
        obs : ReplayBuffer or array-like, shape (n, obs_dim)
            A buffer (then nothing else is given), or the observations before each step.
        action : array-like, shape (n, act_dim)
            The actions taken.
        next_obs : array-like, shape (n, obs_dim)
            Observations after each step.
        reward : array-like, shape (n,), optional
            The rewards; needed by an ensemble that learns the reward.
        terminated : array-like of bool, shape (n,), optional
            Whether each step ended its episode.

        Returns
        -------
        dict
            The report: epochs, interrupted, train_loss, val_mse, best_mse, elites,
            skipped_steps, n_train, n_eval.

        Raises
        ------
        KeyboardInterrupt
            After Ctrl-C, once the training has stopped.
        """
        if isinstance(obs, ReplayBuffer):
            if action is not None or next_obs is not None:
                raise TypeError("train(buffer) takes the buffer alone")
            with signal_fds() as fds:
                return self._native.train_buffer(obs._native, signal_fds=fds)
        if action is None or next_obs is None:
            raise TypeError("train needs a ReplayBuffer, or obs, action and next_obs arrays")
        d, a = self._spec["obs_dim"], self._spec["act_dim"]
        if reward is None and self._spec["learned_reward"]:
            raise ValueError("reward: this ensemble learns the reward, so train needs the rewards")
        rows = _transitions(d, a, obs, action, next_obs, reward, terminated)
        with signal_fds() as fds:
            return self._native.train(*rows, signal_fds=fds)

    def ensemble(self) -> Ensemble:
        """The current parameters.

        Returns
        -------
        Ensemble
            A copy; training further does not change it.
        """
        return Ensemble(self._native.ensemble())

    @property
    def elites(self) -> List[int]:
        """The elite members of the last training.

        Returns
        -------
        list of int
            Member indices, best first.
        """
        return self._native.elites()

    def save_checkpoint(self, path: PathLike) -> None:
        """Writes everything needed to continue training exactly (parameters, Adam state, step
        count, random stream, settings).

        Parameters
        ----------
        path : str or os.PathLike
            The file (safetensors), replaced if it exists.
        """
        self._native.save_checkpoint(os.fspath(path))
