"""Sweeps over seeds and configurations on Ray: ``python -m lookahead sweep SPEC.toml`` and
:func:`run`.

A SPEC names the algorithm (``pets``, ``sac``, ``mbpo``), the environment (built in, or
``gymnasium:<id>``), the preset, the seeds, the settings every trial shares (``[set]``), a grid
(``[grid]``: every combination is a configuration) and optionally random samples (``samples``
draws of the distributions in ``[sample]``, each combined with every grid point)::

    algorithm = "pets"
    env = "cartpole"
    preset = "demo"
    seeds = [0, 1, 2, 3, 4]
    threshold = 190.0              # optional: environment steps to this return, per trial
    [set]
    "loop.trials" = 5
    [grid]
    "planner.kind" = ["cem", "icem"]

Each trial (a configuration and a seed) is a Ray task running the engine's loop in its own run
folder ``DIR/<trial>/``. Ray core, not Ray Tune: a trial already is what Tune would wrap — a run
folder with its lock, metrics, checkpoint and exact resume point — so tasks with resource
requests and ``ray.wait`` are all the sweep needs, and nothing sits between a trial and its
folder. ``DIR`` also holds ``sweep.json`` (the spec and its trials), one record per ended trial
(``records/``), ``summary.csv`` and ``curves.svg``, rewritten as trials end.

Rerunning the same sweep skips the finished trials, resumes the interrupted ones from their run
folders' resume points and retries the failed ones. A trial that fails (a bad setting of one
configuration, a device out of memory) is reported with its message and the others go on.
Ctrl-C stops every running trial at its next environment step, its resume point kept; a second
Ctrl-C cancels them at once.
"""
from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import math
import os
import random
import re
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from . import _lookahead as _lk
from . import mbpo, pets, sac
from ._signals import ctrl_c_noted
from .core import _uint

__all__ = ["Spec", "Trial", "load_spec", "run"]

PathLike = Union[str, "os.PathLike[str]"]

ALGORITHMS: Dict[str, Any] = {"pets": pets, "sac": sac, "mbpo": mbpo}
PRESETS = ("reference", "demo")
SPEC_KEYS = ("algorithm", "env", "preset", "seeds", "threshold", "samples", "sample_seed", "set", "grid", "sample")
DISTRIBUTIONS = ("uniform", "log_uniform", "int", "choice")
# Keys of a run's config that the sweep sets itself.
RESERVED = {"env": "the environment is the spec's `env`", "seed": "the seeds are the spec's `seeds`",
            "external_env": "the environment is the spec's `env`"}
MARKER = "lookahead-sweep"


# ---------------------------------------------------------------------------------------------
# The spec


@dataclass(frozen=True)
class Spec:
    """A checked sweep spec (see the module's documentation)."""

    algorithm: str
    env: str
    preset: str
    seeds: Tuple[int, ...]
    set: Dict[str, Any] = field(default_factory=dict)
    grid: Dict[str, List[Any]] = field(default_factory=dict)
    sample: Dict[str, Dict[str, List[Any]]] = field(default_factory=dict)
    samples: int = 0
    sample_seed: int = 0
    threshold: Optional[float] = None

    def swept_keys(self) -> List[str]:
        """The config keys that differ between configurations: the grid's, then the sampled."""
        return list(self.grid) + list(self.sample)

    def configurations(self) -> List[Dict[str, Any]]:
        """Every configuration: each grid point, combined with each of ``samples`` draws (drawn
        in order from ``sample_seed``) when the spec samples."""
        points = [dict(zip(self.grid, values)) for values in itertools.product(*self.grid.values())]
        if not self.sample:
            return points
        rng = random.Random(self.sample_seed)
        draws = [{k: _draw(rng, d) for k, d in self.sample.items()} for _ in range(self.samples)]
        return [{**p, **d} for d in draws for p in points]

    def as_json(self) -> Dict[str, Any]:
        """The spec as plain JSON values, as :func:`load_spec` reads it (what ``sweep.json``
        keeps)."""
        out: Dict[str, Any] = {"algorithm": self.algorithm, "env": self.env, "preset": self.preset,
                               "seeds": list(self.seeds), "set": self.set}
        if self.grid:
            out["grid"] = self.grid
        if self.sample:
            out.update(sample=self.sample, samples=self.samples, sample_seed=self.sample_seed)
        if self.threshold is not None:
            out["threshold"] = self.threshold
        return out


def _draw(rng: random.Random, dist: Mapping[str, List[Any]]) -> Any:
    """One value of a checked distribution."""
    (kind, args), = dist.items()
    if kind == "uniform":
        return rng.uniform(args[0], args[1])
    if kind == "log_uniform":
        return math.exp(rng.uniform(math.log(args[0]), math.log(args[1])))
    if kind == "int":
        return rng.randint(args[0], args[1])
    return rng.choice(args)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_seed(v: Any) -> bool:
    """Whether ``v`` is a seed the engine takes (``core._uint``'s rule)."""
    try:
        _uint("seed", v)
    except (TypeError, _lk.InputError):
        return False
    return True


def _check_key(section: str, key: Any, problems: List[str]) -> bool:
    """Whether ``key`` of ``section`` can name a config key (``section.key``); a problem if not."""
    if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*", key):
        problems.append(f"{section}.{key!r}: a config key is dotted words, e.g. \"planner.kind\"")
        return False
    if key in RESERVED:
        problems.append(f"{section}.{key}: {RESERVED[key]}")
        return False
    return True


def _check_grid(grid: Any, problems: List[str]) -> Dict[str, List[Any]]:
    if not isinstance(grid, Mapping):
        problems.append(f"grid: {type(grid).__name__}; expected a table of key = [values]")
        return {}
    if not grid:
        problems.append("grid: empty; leave [grid] out for one configuration")
    out = {}
    for key, values in grid.items():
        if not _check_key("grid", key, problems):
            continue
        if not isinstance(values, list) or not values:
            problems.append(f"grid.{key}: {values!r}; expected a non-empty list of values")
        elif len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
            problems.append(f"grid.{key}: {values!r} repeats a value")
        else:
            out[key] = values
    return out


def _check_distribution(key: str, dist: Any, problems: List[str]) -> Optional[Dict[str, List[Any]]]:
    """A ``[sample]`` entry: one of {uniform|log_uniform|int = [low, high]} or {choice = [...]}."""
    shapes = "{ uniform = [low, high] }, { log_uniform = [low, high] }, { int = [low, high] } or { choice = [values] }"
    if not isinstance(dist, Mapping) or len(dist) != 1 or next(iter(dist)) not in DISTRIBUTIONS:
        problems.append(f"sample.{key}: {dist!r}; expected {shapes}")
        return None
    (kind, args), = dist.items()
    if kind == "choice":
        if not isinstance(args, list) or not args:
            problems.append(f"sample.{key}.choice: {args!r}; expected a non-empty list of values")
            return None
        return {kind: args}
    whole = kind == "int"
    if not (isinstance(args, list) and len(args) == 2 and all(_is_number(a) for a in args)
            and (not whole or all(isinstance(a, int) for a in args))):
        problems.append(f"sample.{key}.{kind}: {args!r}; expected [low, high] ({'integers' if whole else 'numbers'})")
        return None
    if args[0] > args[1] or (kind == "log_uniform" and args[0] <= 0):
        bound = "0 < low <= high" if kind == "log_uniform" else "low <= high"
        problems.append(f"sample.{key}.{kind}: {args!r}; expected {bound}")
        return None
    return {kind: args}


def _check_sampling(raw: Mapping[str, Any], problems: List[str]) -> Tuple[Dict[str, Dict[str, List[Any]]], int, int]:
    """``[sample]``, ``samples`` and ``sample_seed``: present together or not at all."""
    sample, samples, seed = raw.get("sample", {}), raw.get("samples"), raw.get("sample_seed", 0)
    out: Dict[str, Dict[str, List[Any]]] = {}
    if not isinstance(sample, Mapping):
        problems.append(f"sample: {type(sample).__name__}; expected a table of key = distribution")
        sample = {}
    for key, dist in sample.items():
        if _check_key("sample", key, problems):
            d = _check_distribution(key, dist, problems)
            if d is not None:
                out[key] = d
    if sample and not (isinstance(samples, int) and not isinstance(samples, bool) and samples >= 1):
        problems.append(f"samples: {samples!r}; [sample] needs samples = N (N >= 1 draws)")
        samples = 0
    elif not sample and samples is not None:
        problems.append("samples: given without a [sample] table of distributions")
    if not _is_seed(seed):
        problems.append(f"sample_seed: {seed!r}; expected an integer in 0..2^64")
        seed = 0
    return out, samples or 0, seed


def _check_seeds(seeds: Any, problems: List[str]) -> Tuple[int, ...]:
    if not isinstance(seeds, list) or not seeds:
        problems.append(f"seeds: {seeds!r}; expected a non-empty list of integers, e.g. [0, 1, 2, 3, 4]")
        return ()
    bad = [s for s in seeds if not _is_seed(s)]
    if bad:
        problems.append(f"seeds: {bad!r}; a seed is an integer in 0..2^64")
    elif len(set(seeds)) != len(seeds):
        problems.append(f"seeds: {seeds!r} repeats a seed")
    return tuple(seeds)


def _check_top(raw: Mapping[str, Any], problems: List[str]) -> Tuple[str, str, str, Optional[float]]:
    """The algorithm, environment, preset and threshold, and the unknown top-level keys."""
    unknown = [k for k in raw if k not in SPEC_KEYS]
    if unknown:
        problems.append(f"unknown keys {unknown}; known: {', '.join(SPEC_KEYS)}")
    algorithm, env, preset = raw.get("algorithm"), raw.get("env"), raw.get("preset", "reference")
    if algorithm not in ALGORITHMS:
        problems.append(f"algorithm: {algorithm!r}; expected one of {', '.join(ALGORITHMS)}")
    if not isinstance(env, str) or not env:
        problems.append(f"env: {env!r}; expected a built-in environment (cartpole, pendulum) or gymnasium:<id>")
    if preset not in PRESETS:
        problems.append(f"preset: {preset!r}; expected one of {', '.join(PRESETS)}")
    threshold = raw.get("threshold")
    if threshold is not None and not _is_number(threshold):
        problems.append(f"threshold: {threshold!r}; expected a number (a return)")
        threshold = None
    return str(algorithm), str(env), str(preset), None if threshold is None else float(threshold)


def _check_overlaps(spec_set: Mapping[str, Any], grid: Mapping[str, Any], sample: Mapping[str, Any],
                    problems: List[str]) -> None:
    """A key in two of ``[set]``, ``[grid]`` and ``[sample]``: which value wins is nobody's guess."""
    for a, b, name in ((spec_set, grid, "set and grid"), (spec_set, sample, "set and sample"),
                       (grid, sample, "grid and sample")):
        both = sorted(set(a) & set(b))
        if both:
            problems.append(f"{both} in both {name}; give each key in one of them")


def _read_spec(spec: Union[PathLike, Mapping[str, Any]]) -> Dict[str, Any]:
    """The spec as a dict: a TOML file's (refused past the engine's config size limit) or a
    mapping's."""
    if isinstance(spec, Mapping):
        return dict(spec)
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        import tomli as tomllib  # type: ignore[no-redef]
    text = pets._read_config_file(spec)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise _lk.ConfigError(f"{os.fspath(spec)}: not TOML: {e}") from None


def load_spec(spec: Union[PathLike, Mapping[str, Any]]) -> Spec:
    """A sweep spec read and checked.

    Parameters
    ----------
    spec : str, os.PathLike or mapping
        A TOML file, or its content as a mapping.

    Returns
    -------
    Spec

    Raises
    ------
    ConfigError
        For a file that is not TOML, and for every problem of the spec at once: unknown keys,
        an unknown algorithm or preset, no seeds, an empty grid or list of values, a key in two
        tables, ``env`` or ``seed`` as a swept key, a malformed distribution.
    """
    raw = _read_spec(spec)
    problems: List[str] = []
    algorithm, env, preset, threshold = _check_top(raw, problems)
    seeds = _check_seeds(raw.get("seeds"), problems)
    spec_set = raw.get("set", {})
    if not isinstance(spec_set, Mapping):
        problems.append(f"set: {type(spec_set).__name__}; expected a table of key = value")
        spec_set = {}
    spec_set = {k: v for k, v in spec_set.items() if _check_key("set", k, problems)}
    grid = _check_grid(raw["grid"], problems) if "grid" in raw else {}
    sample, samples, sample_seed = _check_sampling(raw, problems)
    _check_overlaps(spec_set, grid, sample, problems)
    if problems:
        raise _lk.ConfigError("the sweep spec: " + "; ".join(problems))
    return Spec(algorithm, env, preset, seeds, dict(spec_set), grid, sample, samples, sample_seed, threshold)


# ---------------------------------------------------------------------------------------------
# Trials


@dataclass(frozen=True)
class Trial:
    """One configuration and one seed, run in its own folder."""

    name: str
    configuration: int
    values: Dict[str, Any]
    seed: int


def _slug(values: Mapping[str, Any]) -> str:
    """The values of a configuration as a file name's part: letters, digits, ``.+-`` and ``_``."""
    text = "_".join(re.sub(r"[^A-Za-z0-9.+-]+", "", str(v)) for v in values.values())
    return text[:40].strip("._-")


def trials_of(spec: Spec) -> List[Trial]:
    """The spec's trials, configuration by configuration, seed by seed; each named
    ``<configuration>-<values>-seed<seed>`` (a folder name within ``DIR``)."""
    out = []
    for i, values in enumerate(spec.configurations()):
        stem = f"{i:03d}-{_slug(values)}" if values and _slug(values) else f"{i:03d}"
        out.extend(Trial(f"{stem}-seed{seed}", i, values, seed) for seed in spec.seeds)
    return out


def _nest(flat: Mapping[str, Any]) -> Dict[str, Any]:
    """``{"planner.kind": "cem"}`` as ``{"planner": {"kind": "cem"}}`` (a run's ``config``)."""
    out: Dict[str, Any] = {}
    for key, value in flat.items():
        cursor = out
        *sections, last = key.split(".")
        for s in sections:
            cursor = cursor.setdefault(s, {})
        cursor[last] = value
    return out


def _config_errors(spec: Spec, configurations: Sequence[Mapping[str, Any]]) -> List[Optional[str]]:
    """Each configuration's config resolved as its trials will resolve it: the engine's message
    for those it refuses, None for the others. A ``[set]`` the engine refuses, and a sweep none
    of whose configurations resolves, are the spec's problems: refused before anything starts."""
    mod = ALGORITHMS[spec.algorithm]

    def error(values: Mapping[str, Any]) -> Optional[str]:
        try:
            mod.resolve(spec.env, preset=spec.preset, config=_nest({**spec.set, **values}))
        except (_lk.LookaheadError, ValueError, TypeError) as e:
            return str(e)
        return None

    shared = error({})
    if shared is not None:
        raise _lk.ConfigError(f"the sweep spec: set: {shared}")
    errors = [error(v) for v in configurations]
    if errors and all(e is not None for e in errors):
        raise _lk.ConfigError(f"the sweep spec: no configuration resolves; the first: {errors[0]}")
    return errors


def _curve(algorithm: str, result: Mapping[str, Any]) -> List[Tuple[float, float]]:
    """(environment steps, return) of a run's result: each trial's return for PETS, each
    evaluation's mean return for SAC and MBPO."""
    if algorithm == "pets":
        return [(float(t["env_step"]), float(t["return"])) for t in result["trials"]]
    return [(float(e["env_step"]), float(e["eval_return"])) for e in result["evals"]]


def _run_engine(job: Mapping[str, Any]) -> Dict[str, Any]:
    """One trial's run in its folder: resumed from its resume point when it has one (a finished
    run resumes to its end at once), replaced when it holds a run that never reached one, else
    new."""
    out = job["out"]
    resume = os.path.exists(os.path.join(out, "resume.json"))
    overwrite = not resume and os.path.exists(os.path.join(out, "run.json"))
    ctx = _lk.Context(job["adapter"], job["backend"])
    mod = ALGORITHMS[job["algorithm"]]
    return mod.run(job["env"], preset=job["preset"], config=job["config"], out=out, overwrite=overwrite,
                   resume=resume, seed=job["seed"], progress=False, ctx=ctx)


def _watch_stop(control: Any, done: threading.Event) -> None:
    """Asks the engine to stop after its current step once the sweep is stopping (polled every
    half second until ``done``; the engine clears a request when a run starts, so it is asked
    again)."""
    import ray

    while not done.wait(0.5):
        with contextlib.suppress(Exception):
            if ray.get(control.stopping.remote()):
                _lk.request_stop()


def run_trial(job: Mapping[str, Any], control: Any) -> Dict[str, Any]:
    """A Ray task: one trial's run, its record returned (status ``finished``, ``interrupted``,
    ``failed`` with its message, or ``not started`` when the sweep stopped before it began)."""
    import ray

    start = time.monotonic()
    if ray.get(control.stopping.remote()):
        return {"status": "not started", "curve": [], "seconds": 0.0, "message": ""}
    ray.get(control.started.remote(job["name"]))
    done = threading.Event()
    threading.Thread(target=_watch_stop, args=(control, done), daemon=True).start()
    try:
        result = _run_engine(job)
        record = {"status": "interrupted" if result["interrupted"] else "finished",
                  "curve": _curve(job["algorithm"], result), "message": ""}
    except Exception as e:  # the trial fails alone, with its message
        record = {"status": "failed", "curve": [], "message": f"{type(e).__name__}: {e}"}
    finally:
        done.set()
    record["seconds"] = time.monotonic() - start
    return record


class Control:
    """A Ray actor every trial asks whether the sweep is stopping, and tells when it starts."""

    def __init__(self) -> None:
        self._stopping = False
        self._running: List[str] = []

    def stop(self) -> None:
        self._stopping = True

    def stopping(self) -> bool:
        return self._stopping

    def started(self, name: str) -> None:
        self._running.append(name)

    def running(self) -> List[str]:
        return list(self._running)


# ---------------------------------------------------------------------------------------------
# The sweep folder


def _write_atomic(path: str, text: str) -> None:
    """``text`` to ``path`` through a temporary file created exclusively under an unpredictable
    name in the same folder, then renamed (never written through a link)."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _locked(out: str) -> Iterator[None]:
    """Holds ``DIR/sweep.lock`` (an advisory lock the OS releases however the process ends):
    a second sweep on the folder is refused."""
    path = os.path.join(out, "sweep.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        if os.name == "posix":
            import fcntl

            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise _lk.FileError(f"{out}: another sweep is running in this folder (it holds {path})") from None
        yield
    finally:
        os.close(fd)


def _claim(out: str, spec: Spec, trials: Sequence[Trial]) -> None:
    """Makes ``out`` this sweep's folder: new, or one holding this spec's ``sweep.json`` (its
    seeds may differ: seeds added run, seeds left out are left alone). A folder of another spec,
    or of files no sweep wrote, is refused."""
    marker = os.path.join(out, "sweep.json")
    mine = {"kind": MARKER, "spec": spec.as_json(), "trials": [t.name for t in trials]}
    if os.path.exists(marker):
        with open(marker, encoding="utf-8") as f:
            try:
                theirs = json.load(f)
            except ValueError as e:
                raise _lk.FileError(f"{marker}: not a sweep's record ({e})") from None
        if not isinstance(theirs, dict) or theirs.get("kind") != MARKER or not isinstance(theirs.get("spec"), dict):
            raise _lk.FileError(f"{marker}: not a sweep's record")
        if theirs.get("spec") == mine["spec"]:
            return
        same_but_seeds = {**theirs.get("spec", {}), "seeds": None} == {**mine["spec"], "seeds": None}
        if not same_but_seeds:
            raise _lk.ConfigError(f"{out} holds a sweep of another spec ({marker}); give another out folder, "
                                  f"or the spec it ran (its seeds may change)")
    else:
        strangers = [n for n in os.listdir(out) if n != "sweep.lock"]
        if strangers:
            raise _lk.FileError(f"{out} holds files no sweep wrote ({', '.join(sorted(strangers)[:5])}); "
                                f"give an empty or new out folder")
    # A new sweep, or this one with other seeds: a configuration's trials keep their names.
    records = os.path.join(out, "records")
    if os.path.islink(records):
        raise _lk.FileError(f"{records} is a link; the sweep writes its records in a folder of its own")
    os.makedirs(records, exist_ok=True)
    _write_atomic(marker, json.dumps(mine, indent=1) + "\n")


def _read_records(out: str, trials: Sequence[Trial]) -> Dict[str, Dict[str, Any]]:
    """The records of the trials that ended in an earlier sweep of this folder."""
    records = {}
    for t in trials:
        path = os.path.join(out, "records", f"{t.name}.json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                with contextlib.suppress(ValueError):
                    records[t.name] = json.load(f)
    return records


def _steps_to(curve: Sequence[Tuple[float, float]], threshold: Optional[float]) -> Optional[float]:
    return next((x for x, y in curve if threshold is not None and y >= threshold), None)


def summary_rows(spec: Spec, trials: Sequence[Trial], records: Mapping[str, Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """One row per trial: its configuration's values, seed, status, final and best return,
    environment steps to the threshold, the last curve point's steps, wall time and message."""
    rows = []
    for t in trials:
        r = records.get(t.name, {})
        curve = [tuple(p) for p in r.get("curve", [])]
        row: Dict[str, Any] = {"trial": t.name, **{k: t.values.get(k) for k in spec.swept_keys()}, "seed": t.seed}
        row.update(status=r.get("status", "waiting"), final_return=curve[-1][1] if curve else None,
                   best_return=max(y for _, y in curve) if curve else None,
                   steps_to_threshold=_steps_to(curve, spec.threshold), env_steps=curve[-1][0] if curve else None,
                   wall_s=r.get("seconds"), message=r.get("message", ""))
        rows.append(row)
    return rows


def _summary_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: ("" if v is None else round(v, 3) if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


def _bands(spec: Spec, trials: Sequence[Trial], records: Mapping[str, Mapping[str, Any]]):
    """Per configuration with a finished trial: its label and, for the k-th row of its seeds'
    curves (a PETS trial, an evaluation), the mean environment steps, mean return and the
    returns' spread (population standard deviation) over the finished seeds. Rows, not steps,
    are matched: a PETS trial ends at a different step on each seed when an episode terminates."""
    series = []
    for c, values in enumerate(spec.configurations()):
        curves = [records[t.name]["curve"] for t in trials
                  if t.configuration == c and records.get(t.name, {}).get("status") == "finished"]
        if not curves:
            continue
        points = []
        for k in range(min(len(curve) for curve in curves)):
            xs, ys = [curve[k][0] for curve in curves], [curve[k][1] for curve in curves]
            mean = sum(ys) / len(ys)
            points.append((sum(xs) / len(xs), mean, math.sqrt(sum((y - mean) ** 2 for y in ys) / len(ys))))
        label = ", ".join(f"{k}={v}" for k, v in values.items()) or spec.env
        series.append((f"{label} ({len(curves)} seeds)", points))
    return series


def _write_results(out: str, spec: Spec, trials: Sequence[Trial], records: Mapping[str, Mapping[str, Any]]) -> None:
    """``summary.csv`` and ``curves.svg`` of the records so far."""
    _write_atomic(os.path.join(out, "summary.csv"), _summary_csv(summary_rows(spec, trials, records)))
    series = _bands(spec, trials, records)
    if series:
        title = f"{spec.algorithm} {spec.env} ({spec.preset}): mean ± std over seeds"
        _lk.plot_bands(os.path.join(out, "curves.svg"), title, "environment steps", "return", series)


# ---------------------------------------------------------------------------------------------
# The driver


class _Progress:
    """The sweep's progress line on stderr: trials done, running, failed, waiting."""

    def __init__(self, total: int, show: bool):
        self.total, self.show = total, show
        self.tty = show and sys.stderr.isatty()

    def line(self, done: int, running: int, failed: int, note: str = "") -> None:
        if not self.show:
            return
        waiting = self.total - done - running - failed
        text = f"sweep: {done}/{self.total} done, {running} running, {failed} failed, {waiting} waiting"
        if note:
            text = f"{note}\n{text}" if not self.tty else f"\r\x1b[K{note}\n{text}"
        print(("\r\x1b[K" + text) if self.tty else text, end="" if self.tty else "\n", file=sys.stderr, flush=True)

    def end(self) -> None:
        if self.tty:
            print(file=sys.stderr)


def _start_ray(address: Optional[str], cpus: Optional[int]):
    """Ray: a local instance for the sweep, or the cluster at ``address``."""
    try:
        import ray
    except ModuleNotFoundError:
        raise ModuleNotFoundError("the sweep runs on Ray: pip install \"lookahead[ray]\" (or pip install ray)") from None
    if not ray.is_initialized():
        kw: Dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
        if address is None:
            # "local": a new instance, even where `ray start` runs a cluster that ray.init()
            # would otherwise join.
            kw["num_cpus"] = cpus
        try:
            ray.init(address=address or "local", **kw)
        except ConnectionError as e:
            cause = f"{e} ({e.__cause__})" if e.__cause__ else str(e)
            hint = ("; a cluster with token authentication (Ray's default) needs RAY_AUTH_MODE=token and its token "
                    "(~/.ray/auth_token or RAY_AUTH_TOKEN) where the sweep runs") if "Auth" in cause else ""
            raise ConnectionError(f"{address}: {e}{hint}") from None
    return ray


@dataclass(frozen=True)
class _Launch:
    """Where the trials run and what each asks for (see :func:`run`)."""

    address: Optional[str]
    gpus_per_trial: Optional[float]
    cpus_per_trial: float
    num_cpus: Optional[int]
    adapter: Optional[str]
    backend: Optional[str]

    def check(self) -> None:
        """Every impossible request at once (ValueError), before anything starts."""
        problems = []
        if self.gpus_per_trial is not None and not (_is_number(self.gpus_per_trial) and self.gpus_per_trial >= 0):
            problems.append(f"gpus_per_trial: {self.gpus_per_trial!r}; expected a number >= 0 (a fraction shares a GPU)")
        if not (_is_number(self.cpus_per_trial) and self.cpus_per_trial > 0):
            problems.append(f"cpus_per_trial: {self.cpus_per_trial!r}; expected a number > 0")
        if self.num_cpus is not None and not (isinstance(self.num_cpus, int) and self.num_cpus >= 1):
            problems.append(f"num_cpus: {self.num_cpus!r}; expected an integer >= 1")
        if self.num_cpus is not None and self.address is not None:
            problems.append("num_cpus: a cluster joined with address has its own CPUs")
        if problems:
            raise ValueError("; ".join(problems))

    def resources(self, ray: Any) -> Dict[str, float]:
        """A trial's Ray resources: ``cpus_per_trial`` CPUs and ``gpus_per_trial`` GPUs (left
        out: one where the cluster has GPUs, none where it has none, as with lavapipe)."""
        gpus = self.gpus_per_trial
        if gpus is None:
            gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        return {"num_cpus": float(self.cpus_per_trial), "num_gpus": float(gpus)}


def _job(spec: Spec, t: Trial, out: str, launch: _Launch) -> Dict[str, Any]:
    """What a trial's task needs to run it."""
    return {"name": t.name, "algorithm": spec.algorithm, "env": spec.env, "preset": spec.preset, "seed": t.seed,
            "config": _nest({**spec.set, **t.values}), "out": os.path.join(out, t.name), "adapter": launch.adapter,
            "backend": launch.backend}


@dataclass
class _Sweep:
    """A sweep under way: its spec, trials, folder, the records so far and what Ray runs."""

    spec: Spec
    trials: List[Trial]
    out: str
    records: Dict[str, Dict[str, Any]]
    progress: _Progress
    pending: Dict[Any, Trial] = field(default_factory=dict)

    def counts(self, running: int) -> Tuple[int, int, int]:
        """(finished, ``running``, failed): a failed trial that runs again counts as waiting."""
        pending = {t.name for t in self.pending.values()}
        ended = [r.get("status") for name, r in self.records.items() if name not in pending]
        return ended.count("finished"), running, ended.count("failed")

    def record(self, t: Trial, rec: Dict[str, Any]) -> None:
        """A trial's end: its record kept (one not started keeps none), the summary and curves
        rewritten."""
        if rec["status"] == "not started":
            return
        earlier = self.records.get(t.name, {})
        if earlier.get("status") == "interrupted":
            rec["seconds"] = rec["seconds"] + (earlier.get("seconds") or 0.0)
        self.records[t.name] = rec
        _write_atomic(os.path.join(self.out, "records", f"{t.name}.json"), json.dumps(rec) + "\n")
        _write_results(self.out, self.spec, self.trials, self.records)


def _wait_all(ray: Any, sweep: _Sweep, control: Any) -> bool:
    """Collects the trials as they end; after Ctrl-C asks every trial to stop at its next step
    and goes on collecting; a second Ctrl-C cancels them. Whether the sweep was interrupted."""
    stopping, shown, polled = False, None, 0.0
    with ctrl_c_noted() as pressed:
        try:
            while sweep.pending:
                if pressed and not stopping:
                    stopping = True
                    ray.get(control.stop.remote())
                    sweep.progress.line(*sweep.counts(_running(ray, sweep, control)),
                                        note="stopping: every trial stops at its next step, its resume point "
                                             "kept (Ctrl-C again cancels them)")
                if time.monotonic() - polled > 2.0:
                    # The trials started since: the progress line again when its counts changed.
                    polled = time.monotonic()
                    counts = sweep.counts(_running(ray, sweep, control))
                    if counts != shown:
                        sweep.progress.line(*counts)
                        shown = counts
                ready, _ = ray.wait(list(sweep.pending), num_returns=1, timeout=0.5)
                for ref in ready:
                    t, rec = sweep.pending.pop(ref), _result(ray, ref)
                    sweep.record(t, rec)
                    shown = sweep.counts(_running(ray, sweep, control))
                    sweep.progress.line(*shown, note=f"{t.name}: {_describe(rec)}")
        except KeyboardInterrupt:
            for ref in sweep.pending:
                ray.cancel(ref, force=True)
            raise
    return stopping


def _result(ray: Any, ref: Any) -> Dict[str, Any]:
    """A trial task's record, or a failure's when the task itself died (a worker crashed or
    was cancelled)."""
    try:
        return ray.get(ref)
    except Exception as e:
        return {"status": "failed", "curve": [], "seconds": 0.0, "message": f"{type(e).__name__}: {e}"}


def _running(ray: Any, sweep: _Sweep, control: Any) -> int:
    """How many of the pending trials have started."""
    return len(set(ray.get(control.running.remote())) & {t.name for t in sweep.pending.values()})


def _describe(rec: Mapping[str, Any]) -> str:
    curve = rec.get("curve") or []
    last = f", last return {curve[-1][1]:.1f} at step {curve[-1][0]:.0f}" if curve else ""
    text = rec.get("message") or ""
    msg = f": {text[:300]}…" if len(text) > 300 else f": {text}" if text else ""
    return f"{rec['status']} in {rec.get('seconds', 0.0):.1f} s{last}{msg}"


def run(
    spec: Union[PathLike, Mapping[str, Any]],
    out: Optional[PathLike] = None,
    address: Optional[str] = None,
    gpus_per_trial: Optional[float] = None,
    cpus_per_trial: float = 1.0,
    num_cpus: Optional[int] = None,
    adapter: Optional[str] = None,
    backend: Optional[str] = None,
    progress: bool = True,
) -> Dict[str, Any]:
    """Runs a sweep: every trial of ``spec`` not finished in ``out`` yet, as Ray tasks.

    Parameters
    ----------
    spec : str, os.PathLike or mapping
        The sweep spec (see :func:`load_spec` and the module's documentation).
    out : str or os.PathLike, optional
        The sweep folder (default ``runs/sweep-<algorithm>-<env>``): ``DIR/<trial>/`` run
        folders, ``sweep.json``, ``records/``, ``summary.csv``, ``curves.svg``. On a cluster, a
        path every node can write (a shared file system), since each trial's run folder is
        written where the trial runs and resumed wherever it runs next.
    address : str, optional
        A Ray cluster to join (``ray start --head`` prints it); left out, a local Ray instance
        is started for the sweep (one already started in this process is used).
    gpus_per_trial : float, optional
        GPUs a trial asks Ray for; a fraction lets trials share a GPU. Left out: 1 where the
        cluster has GPUs, 0 where it has none.
    cpus_per_trial : float
        CPUs a trial asks Ray for.
    num_cpus : int, optional
        The CPUs of a local Ray instance (left out: the machine's).
    adapter, backend : str, optional
        The GPU adapter (a part of its name) and backend each trial opens, as for ``Context``.
    progress : bool
        A progress line on stderr (trials done, running, failed, waiting), and a line per ended
        trial.

    Returns
    -------
    dict
        ``rows`` (summary.csv's rows as dicts), ``interrupted``, ``out_dir``, ``summary`` and
        ``curves`` (their paths).

    Raises
    ------
    ConfigError
        For every problem of the spec at once, before anything starts (see :func:`load_spec`),
        a ``[set]`` the engine refuses, no configuration the engine accepts, and a folder
        holding a sweep of another spec.
    ValueError
        For impossible resources (negative GPUs, no CPUs, ``num_cpus`` with ``address``), all
        at once, before anything starts.
    FileError
        For a folder another sweep is running in, or holding files no sweep wrote.
    ModuleNotFoundError
        Without Ray.
    """
    checked = load_spec(spec)
    launch = _Launch(address, gpus_per_trial, cpus_per_trial, num_cpus, adapter, backend)
    launch.check()
    trials = trials_of(checked)
    config_errors = _config_errors(checked, checked.configurations())
    default = os.path.join("runs", f"sweep-{checked.algorithm}-{pets._gym.strip_prefix(checked.env)}")
    out = os.fspath(out) if out is not None else default
    os.makedirs(out, exist_ok=True)
    with _locked(out):
        _claim(out, checked, trials)
        return _sweep(checked, trials, config_errors, out, launch, progress)


def _sweep(spec: Spec, trials: List[Trial], config_errors: List[Optional[str]], out: str, launch: _Launch,
           progress: bool) -> Dict[str, Any]:
    """The sweep's phases: the earlier records read, the configurations the engine refuses
    recorded as failed, the rest submitted, collected as they end, the results written."""
    sweep = _Sweep(spec, trials, out, _read_records(out, trials), _Progress(len(trials), progress))
    todo = [t for t in trials if sweep.records.get(t.name, {}).get("status") != "finished"]
    for t in todo:
        if config_errors[t.configuration] is not None:
            sweep.record(t, {"status": "failed", "curve": [], "seconds": 0.0, "message": config_errors[t.configuration]})
    todo = [t for t in todo if config_errors[t.configuration] is None]
    _write_results(out, spec, trials, sweep.records)
    interrupted = False
    sweep.progress.line(*sweep.counts(0), note=f"sweep {out}: {len(trials)} trials, {len(trials) - len(todo)} "
                                               f"finished before or refused by the engine, {len(todo)} to run")
    if todo:
        ray = _start_ray(launch.address, launch.num_cpus)
        resources = launch.resources(ray)
        control = ray.remote(Control).remote()
        # A process per trial: what a run holds (the device, a driver's allocations) goes back
        # when it ends, instead of piling up in a worker that Ray reuses.
        task = ray.remote(max_calls=1)(run_trial)
        for t in todo:
            ref = task.options(name=t.name, max_retries=0, **resources).remote(_job(spec, t, out, launch), control)
            sweep.pending[ref] = t
        interrupted = _wait_all(ray, sweep, control)
    sweep.progress.end()
    rows = summary_rows(spec, trials, sweep.records)
    return {"rows": rows, "interrupted": interrupted, "out_dir": out, "summary": os.path.join(out, "summary.csv"),
            "curves": os.path.join(out, "curves.svg")}
