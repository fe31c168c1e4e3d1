//! Recording and running training epochs: the per-step `TrainParams`, minibatch indices and
//! statistics of one call (an [`Epoch`]), the dispatches of a minibatch step (gather, forward,
//! loss, backward, gradient norm, Adam), and submissions of many steps each, every wait bounded.

use std::time::Duration;

use super::device::NetOps;
use super::Trainer;
use crate::error::Result;
use crate::gpu::{grid_1d, Profile, Recorder};
use crate::kernels::adam::AdamBuffers;
use crate::kernels::loss::LossBuffers;
use crate::kernels::{self, TrainParams, WG_SIZE};

/// Longest wait for one training submission.
const SUBMISSION_TIMEOUT: Duration = Duration::from_secs(600);

/// Per-call resources: the dataset, minibatch indices, statistics and step parameters.
pub(super) struct Epoch {
    pub(super) n_steps: usize,
    pub(super) indices: wgpu::Buffer,
    pub(super) stats: wgpu::Buffer,
    pub(super) stats_len: usize,
    pub(super) params_bg: wgpu::BindGroup,
    pub(super) loss_bg: wgpu::BindGroup,
    pub(super) adam_bg: Option<wgpu::BindGroup>,
    pub(super) valid: Vec<u32>,
}

impl Trainer {
    pub(super) fn base_params(&self, valid: u32, step: usize, n_steps: usize, objective: u32) -> TrainParams {
        let s = &self.ensemble.spec;
        TrainParams {
            n_members: s.n_members as u32,
            batch: self.cfg.batch_size as u32,
            valid_rows: valid,
            in_dim: s.in_dim() as u32,
            model_out: s.model_out() as u32,
            probabilistic: s.probabilistic as u32,
            learn_bounds: (self.cfg.learn_logvar_bounds && s.probabilistic) as u32,
            step: step as u32,
            n_steps: n_steps as u32,
            bounds_offset: self.layout.max_logvar as u32,
            min_offset: self.layout.min_logvar as u32,
            n_params: self.layout.len as u32,
            n_chunks: self.net.n_chunks as u32,
            lr: self.cfg.lr as f32,
            beta1: self.cfg.beta1 as f32,
            beta2: self.cfg.beta2 as f32,
            eps: self.cfg.eps as f32,
            weight_decay: self.cfg.weight_decay as f32,
            clip_norm: self.cfg.clip_grad_norm.unwrap_or(0.0) as f32,
            logvar_penalty: self.cfg.logvar_penalty as f32,
            objective,
            _pad0: 0,
            _pad1: 0,
            _pad2: 0,
        }
    }

    /// Step parameters, indices and statistics for `n_steps` minibatch steps over `rows`
    /// (one list per member; `None` for scoring, where every member sees the same rows).
    pub(super) fn make_epoch(&self, dataset: &wgpu::Buffer, valid: Vec<u32>, objective: u32) -> Result<Epoch> {
        let ctx = &self.ctx;
        let s = &self.ensemble.spec;
        let (e, b, mo) = (s.n_members, self.cfg.batch_size, s.model_out());
        let n_steps = valid.len();
        let stats_len = n_steps * e + n_steps + e * b * mo * 3;
        // Within the sizes `check_transitions` allowed for the training call.
        let idx_len = n_steps * e * b;
        let mut bytes = vec![0u8; self.params_stride as usize * n_steps];
        for (step, v) in valid.iter().enumerate() {
            let p = self.base_params(*v, step, n_steps, objective);
            let off = step * self.params_stride as usize;
            bytes[off..off + std::mem::size_of::<TrainParams>()].copy_from_slice(bytemuck::bytes_of(&p));
        }
        ctx.scoped("training epoch", || {
            let uniform = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("train.step_params"),
                size: bytes.len() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            ctx.queue.write_buffer(&uniform, 0, &bytes);
            let params_bg =
                kernels::bind_params::<TrainParams>(ctx, "train.step_params", &self.loss.params_layout, &uniform);
            let indices = ctx.storage_buffer("train.indices", idx_len);
            let stats = ctx.storage_buffer("train.stats", stats_len);
            let net = &self.net;
            let loss_bg = self.loss.bind(
                ctx,
                "train.loss",
                &LossBuffers {
                    dataset,
                    indices: &indices,
                    x0: &net.x0,
                    out: &net.out,
                    grad_out: &net.grad_out,
                    params: &net.params,
                    grads: &net.grads,
                    stats: &stats,
                },
            );
            let adam_bg = (objective == 0).then(|| {
                self.adam.bind(
                    ctx,
                    "train.adam",
                    &AdamBuffers {
                        params: &net.params,
                        grads: &net.grads,
                        moment1: &net.moment1,
                        moment2: &net.moment2,
                        partials: &net.partials,
                        stats: &stats,
                        counters: &net.counters,
                    },
                )
            });
            Epoch { n_steps, indices, stats, stats_len, params_bg, loss_bg, adam_bg, valid }
        })
    }

    /// Records steps `steps` of `ep` (training steps when `ep` has an optimiser bind group).
    pub(super) fn encode(
        &self,
        ep: &Epoch,
        steps: std::ops::Range<usize>,
        backward_only: bool,
    ) -> Result<(wgpu::CommandEncoder, Profile)> {
        let s = &self.ensemble.spec;
        let (e, b) = (s.n_members as u32, self.cfg.batch_size as u32);
        let max = self.ctx.limits().max_compute_workgroups_per_dimension;
        let xy = |g: (u32, u32)| (g.0, g.1, 1);
        let grid_x0 = xy(grid_1d(e * b * s.in_dim() as u32, WG_SIZE, max)?);
        let grid_nll = xy(grid_1d(e * b * s.model_out() as u32, WG_SIZE, max)?);
        // The reductions: a workgroup per member and output dimension, and one per chunk.
        let grid_reduce = xy(grid_1d(e + s.model_out() as u32, 1, max)?);
        let grid_chunks = xy(grid_1d(self.net.n_chunks as u32, 1, max)?);
        let grid_params = xy(grid_1d(self.layout.len as u32, WG_SIZE, max)?);
        let mut rec = Recorder::new(&self.ctx, "train", self.profiler.as_ref());
        let mlp = &self.mlp;
        for step in steps {
            let off = [(step as u64 * self.params_stride) as u32];
            let with_params = |g| [(&ep.params_bg, &off[..]), (g, &[][..])];
            rec.dispatch("gather_batch", &self.loss.gather, &with_params(&ep.loss_bg), grid_x0);
            // A step that only scores skips the backward pass below.
            let backward = ep.adam_bg.is_some() || backward_only;
            match self.net.ops() {
                NetOps::Fused(k, f) => {
                    let (bg, groups) = if backward { &f.forward } else { &f.score };
                    rec.dispatch("forward", &k.forward.forward, &[(bg, &[])], *groups)
                }
                NetOps::Layers(net) => net.record_forward(&mut rec, mlp),
            }
            rec.dispatch("nll_grad", &self.loss.nll, &with_params(&ep.loss_bg), grid_nll);
            rec.dispatch("reduce_loss", &self.loss.reduce, &with_params(&ep.loss_bg), grid_reduce);
            if !backward {
                continue;
            }
            match self.net.ops() {
                NetOps::Fused(k, f) => {
                    if let (Some((bg, groups)), Some(kc)) = (&f.chain, &k.chain) {
                        rec.dispatch("backward_chain", &kc.forward, &[(bg, &[])], *groups);
                    }
                    rec.dispatch("weight_grads", &k.grads.weight_grads, &[(&f.grads.0, &[])], f.grads.1);
                }
                NetOps::Layers(net) => net.record_backward(&mut rec, mlp),
            }
            let Some(adam_bg) = ep.adam_bg.as_ref().filter(|_| !backward_only) else { continue };
            rec.dispatch("grad_norm_partial", &self.adam.norm_partial, &with_params(adam_bg), grid_chunks);
            rec.dispatch("grad_norm_final", &self.adam.norm_final, &with_params(adam_bg), (1, 1, 1));
            rec.dispatch("adam_step", &self.adam.adam, &with_params(adam_bg), grid_params);
        }
        Ok(rec.finish())
    }

    /// Runs `ep`'s steps a submission at a time. Training and scoring stop between submissions
    /// when interrupted (`false`); the caller sees the flag and keeps the best weights. Backward
    /// passes alone (`backward_only`) always complete.
    pub(super) fn run_steps(&self, ep: &Epoch, backward_only: bool) -> Result<bool> {
        let per = self.cfg.steps_per_submission;
        let mut start = 0;
        while start < ep.n_steps {
            if !backward_only && self.interrupted() {
                return Ok(false);
            }
            let end = (start + per).min(ep.n_steps);
            let (encoder, profile) = self.encode(ep, start..end, backward_only)?;
            let index = self.ctx.queue.submit(Some(encoder.finish()));
            self.ctx.wait(Some(index), SUBMISSION_TIMEOUT)?;
            let stats = profile.read(&self.ctx, self.profiler.as_ref(), SUBMISSION_TIMEOUT)?;
            self.recorded.borrow_mut().add(&stats);
            start = end;
        }
        Ok(true)
    }

    /// Per-member MSE of `ep` (a scoring epoch), weighting steps by their rows; `None` when the
    /// interrupt flag stopped the scoring.
    pub(super) fn member_scores(&self, ep: &Epoch) -> Result<Option<Vec<f64>>> {
        if !self.run_steps(ep, false)? {
            return Ok(None);
        }
        let e = self.ensemble.spec.n_members;
        let stats = self.ctx.read_buffer::<f32>(&ep.stats, ep.n_steps * e)?;
        let total: f64 = ep.valid.iter().map(|v| *v as f64).sum();
        Ok(Some(
            (0..e)
                .map(|m| {
                    ep.valid.iter().enumerate().map(|(s, v)| stats[s * e + m] as f64 * *v as f64).sum::<f64>() / total
                })
                .collect(),
        ))
    }
}
