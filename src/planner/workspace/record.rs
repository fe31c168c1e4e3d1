//! Recording CEM iterations into one command buffer: per iteration the kind's sampling, the
//! rollout (known dynamics, or the model's steps) and the distribution's update, then the
//! readback copies and, with a warm start, the shift of the solution.

use super::{LayerDispatch, Workspace};
use crate::gpu::{grid_1d, Profile, Profiler, Recorder};
use crate::kernels::{PlanParams, WG_SIZE};
use crate::planner::{DynamicsKernels, NetKernels, Planner, PlannerKind, Propagation};

/// Profile labels of the ensemble's layers (deeper layers share the last label).
const LAYER_LABELS: [&str; 8] = ["layer0", "layer1", "layer2", "layer3", "layer4", "layer5", "layer6", "layer7+"];

/// Records `kernel` over `grid` with the plan parameters at offset `off` (group 0) and `bg`
/// (group 1).
fn run(
    rec: &mut Recorder<'_>,
    ws: &Workspace,
    kernel: &'static str,
    pipe: &wgpu::ComputePipeline,
    bg: &wgpu::BindGroup,
    off: u32,
    grid: (u32, u32),
) {
    rec.dispatch(kernel, pipe, &[(&ws.params_bg, &[off]), (bg, &[])], (grid.0, grid.1, 1));
}

impl Planner {
    /// Records CEM iterations `its`, then copies the mean, the plan statistics and the variance
    /// to the staging buffer, then (with `shift`) the warm start for the next plan; with a
    /// profiler every dispatch is timed.
    pub(in crate::planner) fn encode(
        &self,
        ws: &Workspace,
        its: std::ops::Range<usize>,
        shift: bool,
        profiler: Option<&Profiler>,
    ) -> (wgpu::CommandEncoder, Profile) {
        let mut rec = Recorder::new(&self.ctx, "planner.plan", profiler);
        for it in its {
            let p = self.iteration_params(ws.n_batch, it);
            self.record_sample(&mut rec, ws, it, &p);
            self.record_rollout(&mut rec, ws, it, p.population as usize);
            self.record_update(&mut rec, ws, it, p.population as usize);
        }
        self.record_readback(&mut rec, ws, shift);
        rec.finish()
    }

    /// The offset of iteration `it`, step `t`'s `PlanParams`.
    fn params_offset(&self, ws: &Workspace, it: usize, t: usize) -> u32 {
        ((it * self.cfg.horizon + t) as u64 * ws.params_stride) as u32
    }

    /// The grid of `n` invocations; no larger than the ones `workspace_sizes` checked.
    fn grid(&self, n: usize) -> (u32, u32) {
        let max_wg = self.ctx.limits().max_compute_workgroups_per_dimension;
        grid_1d(n as u32, WG_SIZE, max_wg).expect("checked when the workspace was sized")
    }

    /// The kind's sampling of iteration `it`'s candidates (`p`: its population).
    fn record_sample(&self, rec: &mut Recorder<'_>, ws: &Workspace, it: usize, p: &PlanParams) {
        let cem = &self.kernels.cem;
        let (nb, h, na) = (ws.n_batch, self.cfg.horizon, self.task.act_dim);
        let (pop, sampled, keep) = (p.population as usize, p.sampled as usize, p.keep as usize);
        let off0 = self.params_offset(ws, it, 0);
        match self.cfg.kind {
            PlannerKind::Cem | PlannerKind::RandomShooting => {
                run(rec, ws, "sample_candidates", &cem.sample, &ws.cem_bg, off0, self.grid(nb * pop * h * na));
            }
            PlannerKind::Mppi => {
                run(rec, ws, "mppi_sample", &cem.mppi_sample, &ws.cem_bg, off0, self.grid(nb * pop * na))
            }
            PlannerKind::Icem => {
                run(rec, ws, "icem_sample", &cem.icem_sample, &ws.cem_bg, off0, self.grid(nb * sampled * na));
                if keep > 0 {
                    let grid = self.grid(nb * keep * h * na);
                    run(rec, ws, "icem_extras", &cem.icem_extras, &ws.cem_bg, off0, grid);
                }
            }
        }
    }

    /// The rollout of iteration `it`'s `pop` candidates: the known dynamics in one dispatch,
    /// or `begin_rollout` and per step the model (one model step dispatch, or the network and
    /// `propagate`).
    fn record_rollout(&self, rec: &mut Recorder<'_>, ws: &Workspace, it: usize, pop: usize) {
        let off0 = self.params_offset(ws, it, 0);
        let grid_particles = self.grid(ws.n_batch * pop * self.particles);
        let (rollout, net, step) = match &self.kernels.dynamics {
            DynamicsKernels::Analytic(analytic) => {
                run(rec, ws, "rollout_analytic", &analytic.rollout, &ws.rollout_bg, off0, grid_particles);
                return;
            }
            DynamicsKernels::Ensemble { rollout, net, step } => (rollout, net, step),
        };
        let layers =
            &ws.layers.iter().find(|(q, _)| *q as usize == pop).expect("every iteration's population was bound").1;
        // Every particle's start, every step's slots (TS1: one permutation per step;
        // TS∞: one for all) and step 0's inputs; later steps write the next inputs.
        let grid_begin = self.grid(ws.n_batch * pop * self.particles * self.slot_rows().max(1));
        run(rec, ws, "begin_rollout", &rollout.begin, &ws.rollout_bg, off0, grid_begin);
        for t in 0..self.cfg.horizon {
            let off = self.params_offset(ws, it, t);
            if let ([LayerDispatch::Step(bg, net_bg, groups)], Some(sk)) = (layers.as_slice(), step) {
                // Under TS∞ the dispatch at step 0 runs every step (model_step.wgsl).
                if t == 0 || self.cfg.propagation != Propagation::Tsinf {
                    let groups_of = [(&ws.params_bg, &[off][..]), (bg, &[][..]), (net_bg, &[][..])];
                    rec.dispatch("model_step", &sk.step, &groups_of, *groups);
                }
                continue;
            }
            record_network(rec, layers, net);
            run(rec, ws, "propagate", &rollout.propagate, &ws.rollout_bg, off, grid_particles);
        }
    }

    /// The update of iteration `it` from its `pop` candidates' returns: `particle_mean`, then
    /// `mppi_update`, or `rank_elites` and `update_distribution` (and iCEM's
    /// `icem_save_elites`).
    fn record_update(&self, rec: &mut Recorder<'_>, ws: &Workspace, it: usize, pop: usize) {
        let cem = &self.kernels.cem;
        let off0 = self.params_offset(ws, it, 0);
        let grid_candidates = self.grid(ws.n_batch * pop);
        run(rec, ws, "particle_mean", &cem.particle_mean, &ws.cem_bg, off0, grid_candidates);
        if self.cfg.kind == PlannerKind::Mppi {
            run(rec, ws, "mppi_update", &cem.mppi_update, &ws.cem_bg, off0, ws.grid_plan);
            return;
        }
        run(rec, ws, "rank_elites", &cem.rank, &ws.cem_bg, off0, grid_candidates);
        run(rec, ws, "update_distribution", &cem.update, &ws.cem_bg, off0, ws.grid_plan);
        if self.cfg.kind == PlannerKind::Icem {
            let n = ws.n_batch * self.n_elites * self.cfg.horizon * self.task.act_dim;
            run(rec, ws, "icem_save_elites", &cem.icem_save_elites, &ws.cem_bg, off0, self.grid(n));
        }
    }

    /// Copies the mean, `plan_stats` and the variance to the staging buffer; with `shift`,
    /// then shifts the solution for the next plan.
    fn record_readback(&self, rec: &mut Recorder<'_>, ws: &Workspace, shift: bool) {
        let plan_bytes = (ws.n_batch * self.cfg.horizon * self.task.act_dim * 4) as u64;
        let stats_bytes = (ws.n_batch * 8) as u64;
        let encoder = rec.encoder();
        encoder.copy_buffer_to_buffer(&ws.mean, 0, &ws.staging, 0, Some(plan_bytes));
        encoder.copy_buffer_to_buffer(&ws.plan_stats, 0, &ws.staging, plan_bytes, Some(stats_bytes));
        encoder.copy_buffer_to_buffer(&ws.var, 0, &ws.staging, plan_bytes + stats_bytes, Some(plan_bytes));
        if shift {
            // shift_solution writes the shifted mean into `var` (free until the next plan
            // rewrites it), which is then copied over the mean.
            run(rec, ws, "shift_solution", &self.kernels.cem.shift, &ws.cem_bg, 0, ws.grid_plan);
            rec.encoder().copy_buffer_to_buffer(&ws.var, 0, &ws.mean, 0, Some(plan_bytes));
        }
    }
}

/// One model step's network: each layer's dispatch (or dispatches, one per member) with the
/// planner's network kernel.
fn record_network(rec: &mut Recorder<'_>, layers: &[LayerDispatch], net: &NetKernels) {
    for (l, layer) in layers.iter().enumerate() {
        let kernel = LAYER_LABELS[l.min(LAYER_LABELS.len() - 1)];
        match (layer, net) {
            (LayerDispatch::Tiled(bg, groups), NetKernels::Tiled(mlp)) => {
                rec.dispatch(kernel, &mlp.forward, &[(bg, &[])], *groups)
            }
            (LayerDispatch::Rows(layer), NetKernels::Rows(rk)) => rk.record(rec, kernel, layer),
            (LayerDispatch::Fused(bg, groups), NetKernels::Fused(fk)) => {
                rec.dispatch("mlp_fused", &fk.forward, &[(bg, &[])], *groups)
            }
            (LayerDispatch::Fused(bg, groups), NetKernels::Coop(ck)) => {
                rec.dispatch("mlp_coop", &ck.forward, &[(bg, &[])], *groups)
            }
            _ => unreachable!("layers are bound with the planner's own network kernel"),
        }
    }
}
