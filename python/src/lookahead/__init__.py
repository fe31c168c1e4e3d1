"""lookahead: PETS / CEM model-predictive control over probabilistic ensembles, Soft
Actor-Critic, and MBPO (SAC on the ensemble's rollouts), in WGSL compute shaders on any Vulkan,
Metal or DX12 GPU.

    import lookahead as la
    ctx = la.Context()                       # the best adapter (la.adapters() lists them)
    task = la.Task.builtin("pendulum")
    planner = la.Planner(ctx, task, la.Ensemble.random(3, 1), population=200, horizon=20)
    plan = planner.plan([1.0, 0.0, 0.0])     # plan.action, plan.actions, plan.predicted_return
    la.pets.run("Pendulum-v1", preset="demo", out="runs/pendulum")   # needs gymnasium
    la.sac.run("InvertedPendulum-v5", preset="demo", out="runs/ip")  # needs gymnasium[mujoco]
    la.mbpo.run("cartpole", preset="demo", out="runs/mbpo-cartpole")  # the built-in cartpole
    policy = la.sac.Policy.load("runs/ip")   # policy.act(obs) on the CPU, policy.act_batch(obs) on the GPU
    la.distill.run("runs/pendulum")          # the PETS run's planner distilled into a policy (DAgger)
    la.sweep.run("sweep.toml", out="runs/sweep")  # seeds × configurations as Ray tasks (needs ray)
"""
from importlib.metadata import version as _version

from ._lookahead import (
    ConfigError,
    FileError,
    GpuError,
    InputError,
    LimitError,
    LookaheadError,
    MAX_ACT,
    MAX_CONFIG_BYTES,
    MAX_OBS,
)
from .core import Context, Ensemble, Plan, Planner, ReplayBuffer, Task, Trainer, adapters
from . import pets
from . import sac
from . import mbpo
from . import distill
from . import sweep
from . import gym

__all__ = [
    "Context", "Ensemble", "Plan", "Planner", "ReplayBuffer", "Task", "Trainer", "adapters", "pets", "sac", "mbpo", "distill", "sweep", "gym",
    "LookaheadError", "ConfigError", "InputError", "LimitError", "GpuError", "FileError", "MAX_OBS", "MAX_ACT",
    "MAX_CONFIG_BYTES",
]
# One version for the engine and the package: the workspace's Cargo.toml, which maturin writes
# into the distribution's metadata.
__version__ = _version("lookahead")
