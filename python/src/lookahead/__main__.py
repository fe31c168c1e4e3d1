"""``python -m lookahead pets --env gymnasium:HalfCheetah-v5 [--preset demo] [--set key=value ...]``:
PETS on a gymnasium environment with the command line's progress bar and run folder."""
from __future__ import annotations

import argparse
import sys

from . import _lookahead as _lk
from . import pets


def _seed(text: str) -> int:
    v = int(text)
    if not 0 <= v < 2**64:
        raise argparse.ArgumentTypeError(f"{text}: a seed is an integer in 0..2^64")
    return v


def main(argv=None) -> int:
    """The command line.

    Parameters
    ----------
    argv : list of str, optional
        The arguments; ``sys.argv[1:]`` when left out.

    Returns
    -------
    int
        The exit status: 0, 1 for an error (one line on stderr) or 130 when interrupted (bad
        arguments exit with 2, as argparse does).
    """
    ap = argparse.ArgumentParser(prog="python -m lookahead", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pets", help="run PETS on a gymnasium environment")
    p.add_argument("--env", required=True, help="gymnasium:<id>, e.g. gymnasium:HalfCheetah-v5 (the built-in "
                   "cartpole and pendulum run with the `lookahead` binary)")
    p.add_argument("--preset", default="reference", choices=["reference", "demo"])
    p.add_argument("--config", help="a TOML file applied over the preset")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one key (repeatable)")
    p.add_argument("--seed", type=_seed)
    p.add_argument("--out", help="run folder (default runs/pets-<env>-<preset>-seed<seed>)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--adapter", help="use the adapter whose name contains this")
    p.add_argument("--backend", choices=["vulkan", "metal", "dx12", "gl"])
    a = sub.add_parser("adapters", help="list the GPU adapters")
    a.add_argument("--backend", choices=["vulkan", "metal", "dx12", "gl"])
    args = ap.parse_args(argv)
    try:
        if args.command == "adapters":
            for d in _lk.adapters(args.backend):
                print(f"{d['name']} ({d['backend']}, {d['device_type']}, {d['driver']})")
            return 0
        name = args.env.split(":", 1)[1] if ":" in args.env else args.env
        seed = 0 if args.seed is None else args.seed
        out = args.out or f"runs/pets-{name}-{args.preset}-seed{seed}"
        ctx = _lk.Context(args.adapter, args.backend)
        print(f"pets {args.env} ({args.preset}) on {ctx.adapter()['name']}; run directory {out}", file=sys.stderr)
        r = pets.run(args.env, preset=args.preset, config_file=args.config, sets=args.set, out=out,
                     overwrite=args.overwrite, resume=args.resume, seed=args.seed, ctx=ctx)
    except _lk.LookaheadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Ctrl-C while the environment's Python code ran: the run folder holds the last finished
        # trial (or nothing yet, before the first).
        print("interrupted; continue with the same command and --resume", file=sys.stderr)
        return 130
    except Exception as e:  # a gymnasium, file or argument problem: one line, not a traceback
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
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


if __name__ == "__main__":
    sys.exit(main())
