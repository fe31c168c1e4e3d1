//! The planner's workspace and recording: buffers and bind groups sized for one batch of plans
//! (`sizes`: every size checked against the device's limits before anything is created;
//! `bind`: the buffers, then the bind groups), the per-step `PlanParams`, and the recording of
//! CEM iterations into one command buffer (`record`).

mod bind;
mod record;
mod sizes;

use super::{Planner, PlannerKind, Propagation, Sampling};
use crate::error::Result;
use crate::kernels::mlp::RowsLayer;
use crate::kernels::{self, PlanParams};

/// One layer's dispatches: a tiled product over all members, or one row dispatch per member;
/// or the whole network in one fused dispatch; or the whole model step in one dispatch (its
/// groups 1 and 2), which replaces `propagate` as well.
pub(super) enum LayerDispatch {
    Tiled(wgpu::BindGroup, (u32, u32, u32)),
    Rows(RowsLayer),
    Fused(wgpu::BindGroup, (u32, u32, u32)),
    Step(wgpu::BindGroup, wgpu::BindGroup, (u32, u32, u32)),
}

/// Buffers and bind groups for one batch size, built once and reused by every plan.
pub(super) struct Workspace {
    pub(super) n_batch: usize,
    pub(super) params_stride: u64,
    pub(super) params: wgpu::Buffer,
    pub(super) params_bg: wgpu::BindGroup,
    pub(super) rollout_bg: wgpu::BindGroup,
    pub(super) cem_bg: wgpu::BindGroup,
    /// The network's dispatches for each population an iteration can have.
    pub(super) layers: Vec<(u32, Vec<LayerDispatch>)>,
    /// `[2 + n_batch, act_dim]`: lower bounds, upper bounds, each plan's previous first action.
    pub(super) bounds: wgpu::Buffer,
    pub(super) obs: wgpu::Buffer,
    pub(super) mean: wgpu::Buffer,
    pub(super) var: wgpu::Buffer,
    pub(super) cand_returns: wgpu::Buffer,
    pub(super) elites: wgpu::Buffer,
    pub(super) plan_stats: wgpu::Buffer,
    pub(super) staging: wgpu::Buffer,
    pub(super) grid_plan: (u32, u32),
}

impl Planner {
    /// The parameters of iteration `it` for a batch of `n_batch` (step `t` = 0): its population
    /// (sampled candidates and iCEM's extras), model rows, flags and the optimiser's constants.
    pub(super) fn iteration_params(&self, n_batch: usize, it: usize) -> PlanParams {
        let (sampled, extras, extras_flag) = self.cfg.iteration_shape(it, self.have_archive);
        let population = sampled + extras;
        let (local_slots, n_members, model_out, in_dim, mut flags) = match &self.model {
            Some(m) => {
                let s = &m.ensemble.spec;
                let e = s.n_members;
                let pk = population * self.particles;
                let ls = if self.cfg.propagation == Propagation::Expectation { pk * e } else { pk };
                let mut flags = 0;
                if s.probabilistic {
                    flags |= kernels::FLAG_SAMPLE_NOISE;
                }
                if s.learned_reward {
                    flags |= kernels::FLAG_LEARNED_REWARD;
                }
                (ls, e, s.model_out(), s.in_dim(), flags)
            }
            None => (population, 1, self.task.obs_dim, self.task.obs_dim + self.task.act_dim, 0),
        };
        if self.cfg.sampling == Sampling::ClippedNormal {
            flags |= kernels::FLAG_CLIPPED_NORMAL;
        }
        if self.cfg.kind == PlannerKind::RandomShooting {
            flags |= kernels::FLAG_UNIFORM;
        }
        flags |= extras_flag;
        let cap = self.cfg.max_population() as u64;
        let (h, a) = (self.cfg.horizon as u64, self.task.act_dim as u64);
        PlanParams {
            n_batch: n_batch as u32,
            population: population as u32,
            particles: self.particles as u32,
            horizon: self.cfg.horizon as u32,
            obs_dim: self.task.obs_dim as u32,
            act_dim: self.task.act_dim as u32,
            n_members: n_members as u32,
            local_slots: local_slots as u32,
            n_elites: self.n_elites as u32,
            iteration: it as u32,
            t: 0,
            call: self.call,
            seed_lo: self.cfg.seed as u32,
            seed_hi: (self.cfg.seed >> 32) as u32,
            propagation: self.cfg.propagation.code(),
            flags,
            // Random shooting keeps its best candidate as it is.
            alpha: if self.cfg.kind == PlannerKind::RandomShooting { 0.0 } else { self.cfg.alpha as f32 },
            model_out: model_out as u32,
            in_dim: in_dim as u32,
            sampled: sampled as u32,
            keep: extras as u32,
            // Checked to fit in u32 when the workspace was sized.
            archive: (n_batch as u64 * cap * h * a) as u32,
            sigma: self.cfg.sigma as f32,
            gamma: self.cfg.gamma as f32,
            beta: self.cfg.beta as f32,
            noise_beta: self.cfg.noise_beta as f32,
            _pad0: 0,
        }
    }

    /// Rows of slot_of (`begin_rollout` draws them): a permutation per step for TS1, one for
    /// TS∞, none for expectation or known dynamics.
    pub(super) fn slot_rows(&self) -> usize {
        match (&self.model, self.cfg.propagation) {
            (Some(_), Propagation::Ts1) => self.cfg.horizon,
            (Some(_), Propagation::Tsinf) => 1,
            _ => 0,
        }
    }

    pub(super) fn params_bytes(&self, n_batch: usize, stride: u64) -> Vec<u8> {
        let (iters, h) = (self.cfg.effective_iterations(), self.cfg.horizon);
        let mut bytes = vec![0u8; stride as usize * iters * h];
        for it in 0..iters {
            let base = self.iteration_params(n_batch, it);
            for t in 0..h {
                let p = PlanParams { t: t as u32, ..base };
                let off = (it * h + t) * stride as usize;
                bytes[off..off + std::mem::size_of::<PlanParams>()].copy_from_slice(bytemuck::bytes_of(&p));
            }
        }
        bytes
    }

    /// The workspace of batches of `n_batch` plans: every size is checked against the
    /// device's limits first (`workspace_sizes`), so a refused size creates nothing; then the
    /// buffers are allocated and bound, within one error scope.
    pub(super) fn build_workspace(&self, n_batch: usize) -> Result<Workspace> {
        let sizes = self.workspace_sizes(n_batch)?;
        self.ctx.scoped("planner workspace", || {
            let bufs = self.allocate_buffers(&sizes);
            let bound = self.bind_groups(&sizes, &bufs)?;
            Ok(Workspace {
                n_batch,
                params_stride: sizes.params_stride,
                params: bufs.params,
                params_bg: bound.params,
                rollout_bg: bound.rollout,
                cem_bg: bound.cem,
                layers: bound.layers,
                bounds: bufs.bounds,
                obs: bufs.obs,
                mean: bufs.mean,
                var: bufs.var,
                cand_returns: bufs.cand_returns,
                elites: bufs.elites,
                plan_stats: bufs.plan_stats,
                staging: bufs.staging,
                grid_plan: sizes.grid_plan,
            })
        })?
    }
}
