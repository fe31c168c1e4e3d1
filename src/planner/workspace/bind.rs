//! Creating a planner workspace from its checked sizes: the buffers, then the bind groups of
//! the plan parameters, the rollout family, the CEM family and the network's dispatches.

use super::sizes::{BoundLayer, NetShapes, WorkspaceSizes};
use super::LayerDispatch;
use crate::error::Result;
use crate::kernels::cem::CemBuffers;
use crate::kernels::mlp::RowsBuffers;
use crate::kernels::mlp_fused::{FusedBuffers, FusedParams};
use crate::kernels::model_step::StepBuffers;
use crate::kernels::rollout::{bind_rollout, RolloutBuffers};
use crate::kernels::{self, PlanParams};
use crate::planner::{DynamicsKernels, NetKernels, Planner};

/// Every buffer of a workspace (the ones the plan reads back or writes from the host are kept
/// by the [`super::Workspace`]; the others live on in its bind groups).
pub(super) struct WorkspaceBuffers {
    pub(super) params: wgpu::Buffer,
    pub(super) obs: wgpu::Buffer,
    state: wgpu::Buffer,
    track: wgpu::Buffer,
    actions: wgpu::Buffer,
    x0: wgpu::Buffer,
    slot_of: wgpu::Buffer,
    hidden_a: wgpu::Buffer,
    hidden_b: wgpu::Buffer,
    out: wgpu::Buffer,
    pub(super) mean: wgpu::Buffer,
    pub(super) var: wgpu::Buffer,
    pub(super) cand_returns: wgpu::Buffer,
    pub(super) elites: wgpu::Buffer,
    pub(super) bounds: wgpu::Buffer,
    pub(super) plan_stats: wgpu::Buffer,
    pub(super) staging: wgpu::Buffer,
    /// The rollout's model constants when there is no model.
    no_model: Option<wgpu::Buffer>,
    /// The tiled layer kernel's unused auxiliary output.
    no_aux: wgpu::Buffer,
}

/// The bind groups of a workspace.
pub(super) struct WorkspaceBindings {
    pub(super) params: wgpu::BindGroup,
    pub(super) rollout: wgpu::BindGroup,
    pub(super) cem: wgpu::BindGroup,
    /// The network's dispatches for each population an iteration can have.
    pub(super) layers: Vec<(u32, Vec<LayerDispatch>)>,
}

impl Planner {
    /// Creates every buffer of `sizes` (already checked against the limits).
    pub(super) fn allocate_buffers(&self, sizes: &WorkspaceSizes) -> WorkspaceBuffers {
        let ctx = &self.ctx;
        let sb = |label: &str, len: u64| ctx.storage_buffer(label, len as usize);
        let params = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("planner.params"),
            size: sizes.params_bytes,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        // Lower bounds, upper bounds, then each plan's previous first action (MPPI).
        let mid: Vec<f32> = self.lower.iter().zip(&self.upper).map(|(l, u)| 0.5 * (l + u)).collect();
        let bounds_init = [self.lower.clone(), self.upper.clone(), mid.repeat(sizes.n_batch)].concat();
        WorkspaceBuffers {
            params,
            obs: sb("planner.obs", sizes.obs),
            state: sb("planner.state", sizes.state),
            track: sb("planner.track", sizes.track),
            actions: sb("planner.actions", sizes.actions),
            x0: sb("planner.x0", sizes.x0),
            slot_of: sb("planner.slot_of", sizes.slot_of),
            hidden_a: sb("planner.hidden_a", sizes.hidden),
            hidden_b: sb("planner.hidden_b", sizes.hidden),
            out: sb("planner.out", sizes.out),
            mean: sb("planner.mean", sizes.plan),
            var: sb("planner.var", sizes.plan),
            cand_returns: sb("planner.cand_returns", sizes.cand_returns),
            elites: sb("planner.elites", sizes.elites),
            bounds: ctx.storage_buffer_init("planner.bounds", &bounds_init),
            plan_stats: sb("planner.plan_stats", sizes.plan_stats),
            staging: ctx.staging_buffer("planner.readback", sizes.staging_bytes),
            no_model: self.model.is_none().then(|| sb("planner.no_model", 1)),
            no_aux: sb("planner.no_aux", 1),
        }
    }

    /// The bind groups over `bufs`: plan parameters, rollout, CEM and the network's layers.
    pub(super) fn bind_groups(&self, sizes: &WorkspaceSizes, bufs: &WorkspaceBuffers) -> Result<WorkspaceBindings> {
        let ctx = &self.ctx;
        let layouts = &self.kernels.cem.layouts;
        let consts = match &self.model {
            Some(m) => &m.consts,
            None => bufs.no_model.as_ref().expect("allocated without a model"),
        };
        let rollout_buffers = RolloutBuffers {
            obs: &bufs.obs,
            state: &bufs.state,
            track: &bufs.track,
            actions: &bufs.actions,
            model_consts: consts,
            x0: &bufs.x0,
            slot_of: &bufs.slot_of,
            out: &bufs.out,
        };
        let cem_buffers = CemBuffers {
            mean: &bufs.mean,
            var: &bufs.var,
            bounds: &bufs.bounds,
            actions: &bufs.actions,
            track: &bufs.track,
            cand_returns: &bufs.cand_returns,
            elites: &bufs.elites,
            plan_stats: &bufs.plan_stats,
        };
        let layers = match &sizes.net {
            NetShapes::None => Vec::new(),
            NetShapes::Whole(sets) => self.bind_whole_network(sets, bufs, consts),
            NetShapes::Layers(sets) => self.bind_each_layer(sets, bufs)?,
        };
        Ok(WorkspaceBindings {
            params: kernels::bind_params::<PlanParams>(ctx, "planner.params", &layouts.params, &bufs.params),
            rollout: bind_rollout(ctx, layouts, "planner.rollout", &rollout_buffers),
            cem: self.kernels.cem.bind(ctx, "planner.cem", &cem_buffers),
            layers,
        })
    }

    /// The whole-network kernel's dispatch for each population, or the one-dispatch model
    /// step's (which runs the network kernel's layout: the same grid).
    fn bind_whole_network(
        &self,
        sets: &[(u32, FusedParams, (u32, u32, u32))],
        bufs: &WorkspaceBuffers,
        consts: &wgpu::Buffer,
    ) -> Vec<(u32, Vec<LayerDispatch>)> {
        let ctx = &self.ctx;
        let (Some(m), DynamicsKernels::Ensemble { net, step, .. }) = (&self.model, &self.kernels.dynamics) else {
            unreachable!("whole-network shapes are planned for an ensemble only")
        };
        let (weights, biases) = m.network.as_ref().expect("the whole-network kernels' model is packed whole");
        let step_bg = step.as_ref().map(|sk| {
            let buffers = StepBuffers {
                biases,
                state: &bufs.state,
                track: &bufs.track,
                actions: &bufs.actions,
                model_consts: consts,
                x0: &bufs.x0,
                slot_of: &bufs.slot_of,
                weights,
            };
            (sk, sk.bind(ctx, &self.kernels.cem.layouts, "model_step", &buffers))
        });
        let mut layers = Vec::new();
        for (pop, fp, groups) in sets {
            let buffers = FusedBuffers { input: &bufs.x0, weights, biases, output: &bufs.out };
            let dispatch = match (net, &step_bg) {
                (_, Some((sk, bg))) => LayerDispatch::Step(bg.clone(), sk.bind_net(ctx, "model_step.net", fp), *groups),
                (NetKernels::Coop(ck), None) => LayerDispatch::Fused(ck.bind(ctx, "mlp_coop", fp, &buffers), *groups),
                (NetKernels::Fused(fk), None) => LayerDispatch::Fused(fk.bind(ctx, "mlp_fused", fp, &buffers), *groups),
                _ => unreachable!("whole-network shapes are planned for the fused and coop16 kernels only"),
            };
            layers.push((*pop, vec![dispatch]));
        }
        layers
    }

    /// Every layer's dispatches for each population: tiled, or the row kernel's per member.
    /// Layers alternate between two hidden buffers: x0 → a → b → a ... → out.
    fn bind_each_layer(
        &self,
        sets: &[(u32, Vec<BoundLayer>)],
        bufs: &WorkspaceBuffers,
    ) -> Result<Vec<(u32, Vec<LayerDispatch>)>> {
        let ctx = &self.ctx;
        let (Some(m), DynamicsKernels::Ensemble { net, .. }) = (&self.model, &self.kernels.dynamics) else {
            unreachable!("layer shapes are planned for an ensemble only")
        };
        let mut layers = Vec::new();
        for (pop, set) in sets {
            let n_layers = set.len();
            let mut dispatches = Vec::new();
            for (l, (lp, groups)) in set.iter().enumerate() {
                let input = match l {
                    0 => &bufs.x0,
                    _ if l % 2 == 1 => &bufs.hidden_a,
                    _ => &bufs.hidden_b,
                };
                let output = match l {
                    _ if l + 1 == n_layers => &bufs.out,
                    _ if l % 2 == 0 => &bufs.hidden_a,
                    _ => &bufs.hidden_b,
                };
                let dispatch = match (&m.rows, net) {
                    (Some(windows), NetKernels::Rows(rk)) => {
                        let label = format!("mlp_rows.layer{l}");
                        let buffers = RowsBuffers { input, bias: &m.biases[l], output, windows: &windows[l] };
                        LayerDispatch::Rows(rk.bind_layer(ctx, &label, lp, &buffers)?)
                    }
                    (_, NetKernels::Tiled(mlp)) => {
                        let ubuf = ctx.uniform_buffer_init(&format!("mlp.layer{l}.params"), std::slice::from_ref(lp));
                        let resources = [
                            ubuf.as_entire_binding(),
                            input.as_entire_binding(),
                            m.weights[l].as_entire_binding(),
                            m.biases[l].as_entire_binding(),
                            output.as_entire_binding(),
                            bufs.no_aux.as_entire_binding(),
                        ];
                        LayerDispatch::Tiled(mlp.bind(ctx, &format!("mlp.layer{l}"), resources), *groups)
                    }
                    _ => unreachable!("the row kernel is chosen only with its windows packed; fused is bound above"),
                };
                dispatches.push(dispatch);
            }
            layers.push((*pop, dispatches));
        }
        Ok(layers)
    }
}
