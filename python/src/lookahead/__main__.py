"""``python -m lookahead pets|sac|mbpo --env gymnasium:HalfCheetah-v5 [--preset demo] [--set key=value ...]``:
PETS, SAC or MBPO on a gymnasium environment (MBPO on the built-in cartpole and pendulum too) with
the command line's progress bar and run folder; ``python -m lookahead distill --run RUN``: a PETS
run's planner distilled into a policy network; ``python -m lookahead sweep SPEC.toml``: seeds and
configurations of a learner on Ray."""
from __future__ import annotations

import argparse
import os
import sys

from . import _lookahead as _lk
from . import gym as _gym
from . import distill, mbpo, pets, sac, sweep


def _seed(text: str) -> int:
    v = int(text)
    if not 0 <= v < 2**64:
        raise argparse.ArgumentTypeError(f"{text}: a seed is an integer in 0..2^64")
    return v


def _run_parser(sub, command: str, help: str, env_help: str, set_example: str) -> argparse.ArgumentParser:
    """The arguments of a learning run (``pets``, ``sac``, ``mbpo``), as the ``lookahead`` binary's."""
    p = sub.add_parser(command, help=help)
    p.add_argument("--env", required=True, help=env_help)
    p.add_argument("--preset", default="reference", choices=["reference", "demo"])
    p.add_argument("--config", help="a TOML file applied over the preset")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override one key, e.g. {set_example} (repeatable)")
    p.add_argument("--seed", type=_seed)
    p.add_argument("--out", help=f"run folder (default runs/{command}-<env>-<preset>-seed<seed>)")
    files = p.add_mutually_exclusive_group()
    files.add_argument("--overwrite", action="store_true", help="replace the run already in the run folder")
    files.add_argument("--resume", action="store_true",
                       help="continue the run in the run folder from its last consistent point")
    p.add_argument("--adapter", help="use the adapter whose name contains this")
    p.add_argument("--backend", choices=["vulkan", "metal", "dx12", "gl"])
    return p


def _pets(args, name: str, ctx) -> int:
    seed = 0 if args.seed is None else args.seed
    out = args.out or f"runs/pets-{name}-{args.preset}-seed{seed}"
    print(f"pets {args.env} ({args.preset}) on {ctx.adapter()['name']}; run directory {out}", file=sys.stderr)
    r = pets.run(args.env, preset=args.preset, config_file=args.config, sets=args.set, out=out,
                 overwrite=args.overwrite, resume=args.resume, seed=args.seed, ctx=ctx)
    returns = " ".join(f"{t['return']:.1f}" for t in r["trials"])
    print(f"trial returns: {returns}")
    if r["trials"]:
        best = max(r["trials"], key=lambda t: t["return"])
        print(f"{name}: best return {best['return']:.1f} (trial {best['trial'] + 1}) over {len(r['trials'])} trials "
              f"in {r['seconds']:.1f} s; run folder {r['out_dir']}")
    if r["interrupted"]:
        print(f"interrupted at {r['stopped_at']}; continue with the same command and --resume", file=sys.stderr)
        return 130
    return 0


def _print_evals(r, name: str, out: str, ctx) -> None:
    """The evaluations of a SAC or MBPO run, as the ``lookahead`` binary prints them."""
    returns = " ".join(f"{e['eval_return']:.1f}" for e in r["evals"])
    print(f"evaluation returns: {returns or 'none yet'}")
    if r["evals"]:
        last = r["evals"][-1]
        print(f"{name}: last evaluation {last['eval_return']:.1f} ± {last['eval_std']:.1f} at step {last['env_step']} "
              f"({r['episodes']} episodes) in {r['seconds']:.1f} s on {ctx.adapter()['name']}")
    print(f"run folder: {out} (learning curve {os.path.join(out, 'learning_curve.svg')})")


def _sac(args, name: str, ctx) -> int:
    seed = args.seed
    if seed is None:
        seed = sac._seed_of(sac.resolve(args.env, preset=args.preset, config_file=args.config, sets=args.set))
    out = args.out or f"runs/sac-{name}-{args.preset}-seed{seed}"
    print(f"sac {args.env} ({args.preset}) on {ctx.adapter()['name']}; run directory {out}", file=sys.stderr)
    r = sac.run(args.env, preset=args.preset, config_file=args.config, sets=args.set, out=out,
                overwrite=args.overwrite, resume=args.resume, seed=args.seed, ctx=ctx)
    _print_evals(r, name, out, ctx)
    return _policy_run_end(r, out)


def _policy_run_end(r, out: str) -> int:
    """A SAC or MBPO run's exit code, after saying how to go on when it was interrupted."""
    if r["interrupted"]:
        if os.path.exists(os.path.join(out, "resume.json")):
            nxt = "continue from the last evaluation with the same command and --resume"
        else:
            nxt = ("no consistent point was reached (the first comes with the first evaluation): "
                   "start again with --overwrite")
        print(f"interrupted at {r['stopped_at']}; {nxt}", file=sys.stderr)
        return 130
    return 0


def _mbpo(args, name: str, ctx) -> int:
    cfg = mbpo.resolve(args.env, preset=args.preset, config_file=args.config, sets=args.set)
    seed = cfg["seed"] if args.seed is None else args.seed
    out = args.out or f"runs/mbpo-{name}-{args.preset}-seed{seed}"
    m, ro = cfg["model"], cfg["rollout"]
    print(f"mbpo {args.env} ({args.preset}) on {ctx.adapter()['name']}: ensemble {m['members']} × {m['hidden']}, "
          f"{ro['rollouts_per_step'] * ro['freq_train_model']} rollouts every {ro['freq_train_model']} steps (length "
          f"{ro['rollout_schedule'][2:]}), {cfg['sac']['updates_per_step']} SAC update(s) per step, "
          f"{cfg['loop']['total_steps']} steps ({cfg['loop']['initial_exploration_steps']} random); "
          f"run directory {out}", file=sys.stderr)
    r = mbpo.run(args.env, preset=args.preset, config_file=args.config, sets=args.set, out=out,
                 overwrite=args.overwrite, resume=args.resume, seed=args.seed, ctx=ctx)
    _print_evals(r, name, out, ctx)
    return _policy_run_end(r, out)


def _distill(args, ctx) -> int:
    out = args.out or os.path.join(args.run, "distill")
    print(f"distill {args.run} on {ctx.adapter()['name']}; folder {out}", file=sys.stderr)
    r = distill.run(args.run, env=args.env, out=out, iterations=args.iterations, episodes=args.episodes,
                    mode=args.mode, config_file=args.config, sets=args.set, overwrite=args.overwrite,
                    resume=args.resume, seed=args.seed, ctx=ctx)
    planner = sum(r["planner_returns"]) / max(len(r["planner_returns"]), 1)
    for it in r["iterations"]:
        print(f"iteration {it['iteration']}: policy {it['policy_return']:.1f} ± {it['policy_std']:.1f}, planner "
              f"{planner:.1f}, {it['labels']} labels, imitation loss {it['imitation_loss']:.4f}")
    if r["interrupted"]:
        nxt = ("continue from the last iteration with the same command and --resume"
               if os.path.exists(os.path.join(out, "resume.json")) else "no iteration finished: start again with --overwrite")
        print(f"interrupted at {r['stopped_at']}; {nxt}", file=sys.stderr)
        return 130
    return 0


def _distill_parser(sub) -> None:
    """The arguments of ``distill``, as the ``lookahead`` binary's."""
    p = sub.add_parser("distill", help="distil a PETS run's planner into a policy network with DAgger")
    p.add_argument("--run", required=True, help="the PETS run folder")
    p.add_argument("--env", help="the environment (default: the run's own)")
    p.add_argument("--iterations", type=int, help="DAgger iterations after the first")
    p.add_argument("--episodes", type=int, help="episodes per iteration, planned side by side")
    p.add_argument("--mode", choices=["dagger", "bc"])
    p.add_argument("--config", help="a TOML file of [policy], [train], [dagger] and seed")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one key, e.g. train.lr=3e-4 (repeatable)")
    p.add_argument("--seed", type=_seed)
    p.add_argument("--out", help="the folder (default RUN/distill)")
    files = p.add_mutually_exclusive_group()
    files.add_argument("--overwrite", action="store_true", help="replace the distillation already in the folder")
    files.add_argument("--resume", action="store_true", help="continue the distillation in the folder")
    p.add_argument("--adapter", help="use the adapter whose name contains this")
    p.add_argument("--backend", choices=["vulkan", "metal", "dx12", "gl"])


def _sweep_parser(sub) -> None:
    """The arguments of ``sweep``."""
    p = sub.add_parser("sweep", help="run seeds × configurations of pets, sac or mbpo as Ray tasks")
    p.add_argument("spec", help="the sweep's TOML spec: algorithm, env, preset, seeds, [set], [grid], [sample]")
    p.add_argument("--out", help="the sweep folder (default runs/sweep-<algorithm>-<env>); on a cluster, a path "
                                 "every node can write")
    p.add_argument("--address", help="join this Ray cluster (default: a local Ray instance for the sweep)")
    p.add_argument("--gpus-per-trial", type=float,
                   help="GPUs per trial, a fraction to share one (default 1 where the cluster has GPUs, else 0)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs per trial (default 1)")
    p.add_argument("--num-cpus", type=int, help="CPUs of the local Ray instance (default: the machine's)")
    p.add_argument("--adapter", help="the adapter each trial opens: the one whose name contains this")
    p.add_argument("--backend", choices=["vulkan", "metal", "dx12", "gl"])


def _sweep(args) -> int:
    r = sweep.run(args.spec, out=args.out, address=args.address, gpus_per_trial=args.gpus_per_trial,
                  cpus_per_trial=args.cpus_per_trial, num_cpus=args.num_cpus, adapter=args.adapter,
                  backend=args.backend)
    rows = r["rows"]
    failed = [row for row in rows if row["status"] == "failed"]
    finished = [row for row in rows if row["status"] == "finished"]
    print(f"{len(finished)} of {len(rows)} trials finished, {len(failed)} failed; summary {r['summary']}, "
          f"curves {r['curves']}")
    for row in failed:
        print(f"  {row['trial']}: {row['message']}", file=sys.stderr)
    if r["interrupted"]:
        print("interrupted; the same command continues the sweep (finished trials are skipped, stopped ones "
              "resume)", file=sys.stderr)
        return 130
    return 1 if failed else 0


def main(argv=None) -> int:
    """The command line.

    Parameters
    ----------
    argv : list of str, optional
        The arguments; ``sys.argv[1:]`` when left out.

    Returns
    -------
    int
        The exit status: 0, 1 for an error (one line on stderr) or a sweep with a failed trial,
        or 130 when interrupted (bad arguments exit with 2, as argparse does).
    """
    ap = argparse.ArgumentParser(prog="python -m lookahead", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    _run_parser(sub, "pets", "run PETS on a gymnasium environment",
                "gymnasium:<id>, e.g. gymnasium:HalfCheetah-v5 (the built-in cartpole and pendulum run with the "
                "`lookahead` binary)", "planner.horizon=30")
    _run_parser(sub, "sac", "run SAC on a gymnasium environment",
                "gymnasium:<id>, e.g. gymnasium:InvertedPendulum-v5 (the built-in cartpole and pendulum run with "
                "the `lookahead` binary)", "sac.gamma=0.98")
    _run_parser(sub, "mbpo", "run MBPO on a built-in or gymnasium environment",
                "cartpole or pendulum (built in), or gymnasium:<id> with a built-in task, e.g. "
                "gymnasium:InvertedPendulum-v5", "rollout.freq_train_model=100")
    _distill_parser(sub)
    _sweep_parser(sub)
    a = sub.add_parser("adapters", help="list the GPU adapters")
    a.add_argument("--backend", choices=["vulkan", "metal", "dx12", "gl"])
    args = ap.parse_args(argv)
    try:
        if args.command == "adapters":
            for d in _lk.adapters(args.backend):
                print(f"{d['name']} ({d['backend']}, {d['device_type']}, {d['driver']})")
            return 0
        if args.command == "sweep":
            return _sweep(args)
        ctx = _lk.Context(args.adapter, args.backend)
        if args.command == "distill":
            return _distill(args, ctx)
        name = _gym.strip_prefix(args.env)
        return {"pets": _pets, "sac": _sac, "mbpo": _mbpo}[args.command](args, name, ctx)
    except _lk.LookaheadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Ctrl-C while the environment's Python code ran: the run folder holds the last
        # consistent point (or nothing yet, before the first); a sweep's trials keep theirs.
        nxt = "the same command continues the sweep" if args.command == "sweep" else \
            "continue with the same command and --resume"
        print(f"interrupted; {nxt}", file=sys.stderr)
        return 130
    except Exception as e:  # a gymnasium, file or argument problem: one line, not a traceback
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
