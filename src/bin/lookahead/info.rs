//! `adapters` and `envs`: what this machine and the crate offer.

use lookahead::env::EnvKind;
use lookahead::gpu;

use crate::args::GpuArgs;

/// `lookahead adapters`: one line per adapter wgpu sees (of `--backend`, if given).
pub fn cmd_adapters(args: &GpuArgs) -> anyhow::Result<()> {
    for a in gpu::list_adapters(args.backend()?) {
        println!("{a}");
    }
    Ok(())
}

/// `lookahead envs`: one line per built-in environment.
pub fn cmd_envs() -> anyhow::Result<()> {
    for e in EnvKind::ALL {
        let t = e.task();
        println!(
            "{:<10} obs {} act {} bounds {:?}..{:?}",
            e.name(),
            t.obs_dim,
            t.act_dim,
            t.action_lower,
            t.action_upper
        );
    }
    Ok(())
}
