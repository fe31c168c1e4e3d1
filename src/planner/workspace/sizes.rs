//! Sizing a planner workspace: every buffer's length, the largest grids, the plan parameters
//! and the network's dispatch parameters of every population an iteration can have, for one
//! batch size, each checked against the device's limits before anything is created.

use crate::error::{Error, Result};
use crate::gpu::grid_1d;
use crate::kernels::mlp::{Activation, LayerParams};
use crate::kernels::mlp_fused::FusedParams;
use crate::kernels::{self, PlanParams, WG_SIZE};
use crate::planner::{DynamicsKernels, NetKernels, Planner, PlannerKind, Propagation};

/// A dispatch grid.
type Grid = (u32, u32, u32);

/// A layer's parameters and its dispatch grid.
pub(super) type BoundLayer = (LayerParams, Grid);

/// The network's dispatch parameters for each population an iteration can have.
pub(super) enum NetShapes {
    /// Known dynamics: no network.
    None,
    /// The whole network in one dispatch (fused or coop16): its parameters and grid.
    Whole(Vec<(u32, FusedParams, Grid)>),
    /// One dispatch (tiled) or one per member (rows) for each layer.
    Layers(Vec<(u32, Vec<BoundLayer>)>),
}

/// Every length of one batch size's workspace (in floats unless named bytes), checked against
/// the device's limits by [`Planner::workspace_sizes`].
pub(super) struct WorkspaceSizes {
    pub(super) n_batch: usize,
    /// `[batch, obs_dim]`.
    pub(super) obs: u64,
    /// Every particle's state: `[batch · population · particles, obs_dim]`.
    pub(super) state: u64,
    /// Every particle's return and alive flag.
    pub(super) track: u64,
    /// The candidates' sequences, then iCEM's archive of its elites' sequences.
    pub(super) actions: u64,
    /// The model's inputs (two halves when a model step is one dispatch).
    pub(super) x0: u64,
    /// Every step's slots and their inverse.
    pub(super) slot_of: u64,
    /// Each of the two hidden activation buffers (empty for the whole-network kernels).
    pub(super) hidden: u64,
    /// The model's outputs (empty when a model step is one dispatch).
    pub(super) out: u64,
    /// One sequence per plan: the mean, the variance.
    pub(super) plan: u64,
    /// One return per candidate.
    pub(super) cand_returns: u64,
    /// The elites' indices.
    pub(super) elites: u64,
    /// Two statistics per plan.
    pub(super) plan_stats: u64,
    /// The readback: mean, plan statistics and variance.
    pub(super) staging_bytes: u64,
    /// Bytes between two (iteration, step) `PlanParams`.
    pub(super) params_stride: u64,
    /// Bytes of every (iteration, step) `PlanParams`.
    pub(super) params_bytes: u64,
    /// The grid of one value per plan entry (`[batch, horizon, act_dim]`).
    pub(super) grid_plan: (u32, u32),
    pub(super) net: NetShapes,
}

fn check_u32(what: &str, v: u64) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::LimitExceeded {
        what: what.to_string(),
        requested: v,
        limit: "u32 index range",
        max: u32::MAX as u64,
        hint: "lower population, particles or batch size",
    })
}

impl Planner {
    /// The sizes of a workspace for `n_batch` plans, every one checked against the device's
    /// limits (buffer sizes, u32 indices, grids, the network's parameters): a refusal comes
    /// before anything is created.
    pub(super) fn workspace_sizes(&self, n_batch: usize) -> Result<WorkspaceSizes> {
        let ctx = &self.ctx;
        let limits = ctx.limits();
        let cfg = &self.cfg;
        let (p, h, a, d) =
            (cfg.max_population() as u64, cfg.horizon as u64, self.task.act_dim as u64, self.task.obs_dim as u64);
        let b = n_batch as u64;
        let k = self.particles as u64;
        let n = b * p * k;
        // iCEM keeps its elites' sequences after the candidates.
        let archive = if cfg.kind == PlannerKind::Icem { b * self.n_elites as u64 * h * a } else { 0 };
        let members = self.model.as_ref().map_or(1, |m| m.ensemble.spec.n_members as u64);
        let max_local_slots = p * k * if cfg.propagation == Propagation::Expectation { members } else { 1 };
        let slot_rows = self.slot_rows() as u64;
        let hint = "lower population, particles, horizon or the batch size";
        let n32 = check_u32("particles in flight (batch × population × particles)", n)?;
        let (x0, hidden, out) = self.model_lengths(b, max_local_slots)?;
        let (actions, slot_of) = (b * p * h * a + archive, 2 * n * slot_rows);
        let sizes = [
            ("state (batch × population × particles × obs_dim × 4 B)", n * d * 4),
            ("candidate actions (batch × population × horizon × act_dim × 4 B)", actions * 4),
            ("model inputs (slots × in_dim × 4 B, two halves with model_step = fused)", x0 * 4),
            ("hidden activations (slots × widest hidden layer × 4 B)", hidden * 4),
            ("model outputs (slots × outputs × 4 B)", out * 4),
            (
                "every step's slots and their inverse (2 × batch × population × particles × horizon (TS1; TS∞ one) × 4 B)",
                slot_of * 4,
            ),
        ];
        for (what, bytes) in sizes {
            ctx.check_buffer_size(what, bytes, true, hint)?;
            check_u32(what, bytes / 4)?;
        }
        let max_wg = limits.max_compute_workgroups_per_dimension;
        // The largest grids; every iteration's grids are no larger (the recording relies on it).
        grid_1d(n32, WG_SIZE, max_wg)?;
        grid_1d(check_u32("slots of every step", n * slot_rows)?, WG_SIZE, max_wg)?;
        grid_1d(check_u32("candidate action values", actions)?, WG_SIZE, max_wg)?;
        let grid_plan = grid_1d(check_u32("plan values", b * h * a)?, WG_SIZE, max_wg)?;
        let params_stride = kernels::params_stride::<PlanParams>(ctx);
        let params_bytes = params_stride * (cfg.effective_iterations() * cfg.horizon) as u64;
        ctx.check_buffer_size(
            "plan parameters (iterations × horizon × 256 B)",
            params_bytes,
            false,
            "lower iterations or horizon",
        )?;
        Ok(WorkspaceSizes {
            n_batch,
            obs: b * d,
            state: n * d,
            track: n * 2,
            actions,
            x0,
            slot_of,
            hidden,
            out,
            plan: b * h * a,
            cand_returns: b * p,
            elites: b * self.n_elites as u64,
            plan_stats: b * 2,
            staging_bytes: (2 * b * h * a + 2 * b) * 4,
            params_stride,
            params_bytes,
            grid_plan,
            net: self.net_shapes(n_batch)?,
        })
    }

    /// The lengths of the model's buffers for `b` plans of at most `max_local_slots` rows each:
    /// (inputs, each hidden activation buffer, outputs); none without a model.
    fn model_lengths(&self, b: u64, max_local_slots: u64) -> Result<(u64, u64, u64)> {
        let Some(m) = &self.model else { return Ok((0, 0, 0)) };
        let s = &m.ensemble.spec;
        let fused = matches!(
            &self.kernels.dynamics,
            DynamicsKernels::Ensemble { net: NetKernels::Fused(_) | NetKernels::Coop(_), .. }
        );
        // A one-dispatch model step reads step t's inputs from one half of x0 while it writes
        // step t + 1's into the other, and keeps the outputs in workgroup memory.
        let one_dispatch = matches!(&self.kernels.dynamics, DynamicsKernels::Ensemble { step: Some(_), .. });
        let x0_halves: u64 = if one_dispatch { 2 } else { 1 };
        let slots = b * max_local_slots;
        check_u32("local slots × members", max_local_slots * s.n_members as u64)?;
        // The whole-network kernels keep hidden activations in workgroup memory.
        let widest = if fused { 0 } else { s.hidden.iter().copied().max().unwrap_or(0) as u64 };
        let out_cols = if one_dispatch { 0 } else { s.out_cols() as u64 };
        Ok((x0_halves * slots * s.in_dim() as u64, slots * widest, slots * out_cols))
    }

    /// Every distinct population of an iteration (iCEM's vary with the iteration and with an
    /// archive), ascending.
    fn populations(&self) -> Vec<u32> {
        let cfg = &self.cfg;
        let mut shapes: Vec<u32> = (0..cfg.effective_iterations())
            .flat_map(|i| {
                [true, false].map(|h| {
                    let (s, e, _) = cfg.iteration_shape(i, h);
                    (s + e) as u32
                })
            })
            .collect();
        shapes.sort_unstable();
        shapes.dedup();
        shapes
    }

    /// The model rows of a step for `pop` candidates: one per particle, or one per particle and
    /// member under expectation propagation.
    fn local_slots(&self, pop: u32, n_members: u32) -> u32 {
        let pk = pop * self.particles as u32;
        if self.cfg.propagation == Propagation::Expectation {
            pk * n_members
        } else {
            pk
        }
    }

    /// One set of layer dispatch parameters per distinct iteration shape, each checked against
    /// the kernel's limits.
    fn net_shapes(&self, n_batch: usize) -> Result<NetShapes> {
        let ctx = &self.ctx;
        let Some(m) = &self.model else { return Ok(NetShapes::None) };
        let spec = &m.ensemble.spec;
        if let DynamicsKernels::Ensemble { net: net @ (NetKernels::Fused(_) | NetKernels::Coop(_)), .. } =
            &self.kernels.dynamics
        {
            let e = spec.n_members;
            let dims: Vec<usize> = spec.widths();
            let mut sets = Vec::new();
            for pop in self.populations() {
                let local_slots = self.local_slots(pop, e as u32);
                let fp = match net {
                    NetKernels::Coop(_) => crate::kernels::mlp_coop::params(&dims, e, n_batch as u32, local_slots),
                    _ => FusedParams::new(&dims, e, n_batch as u32, local_slots),
                }
                .ok_or_else(|| Error::LimitExceeded {
                    what: format!("{}: the network's packed parameters", net.name()),
                    requested: dims.len() as u64,
                    limit: "8 layers, u32 offsets",
                    max: crate::kernels::mlp_fused::FUSED_MAX_LAYERS as u64,
                    hint: "use mlp_kernel = \"tiled\"",
                })?;
                let groups = match net {
                    NetKernels::Coop(ck) => ck.shape.workgroups(ctx, &fp)?,
                    NetKernels::Fused(fk) => fk.shape.workgroups(ctx, &fp)?,
                    _ => unreachable!("matched above"),
                };
                sets.push((pop, fp, groups));
            }
            return Ok(NetShapes::Whole(sets));
        }
        let last = m.ensemble.layers.len() - 1;
        let e = spec.n_members as u32;
        let mut sets = Vec::new();
        for pop in self.populations() {
            let local_slots = self.local_slots(pop, e);
            let mut set = Vec::new();
            for (l, layer) in m.ensemble.layers.iter().enumerate() {
                let lp = LayerParams {
                    n_batch: n_batch as u32,
                    local_slots,
                    n_members: e,
                    in_dim: layer.in_dim as u32,
                    out_dim: layer.out_dim as u32,
                    activation: if l == last { Activation::Identity as u32 } else { Activation::Silu as u32 },
                    store_pre: 0,
                    bias_grad_off: 0,
                };
                set.push((lp, lp.workgroups(ctx)?));
            }
            sets.push((pop, set));
        }
        Ok(NetShapes::Layers(sets))
    }
}
