//! Recording compute dispatches, counted and optionally timed on the GPU.
//!
//! A [`Recorder`] owns a command encoder. Normally every dispatch goes into one compute pass.
//! With a [`Profiler`] each dispatch gets a pass of its own whose start and end timestamps are
//! written to a query set (the `TIMESTAMP_QUERY` feature; per-pass timestamps need nothing
//! more), so the GPU time of every kernel is known; the passes serialise the dispatches as the
//! single pass does (storage writes are visible to later dispatches either way), but add a
//! little per-pass overhead, so profiled totals run slightly above unprofiled plans.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::{Error, Result};

use super::GpuContext;

/// Timestamps kept per profiled submission (two per dispatch).
const MAX_QUERIES: u32 = 4096;

/// A query set and its readback buffers for timing dispatches.
pub struct Profiler {
    queries: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    staging: wgpu::Buffer,
    period_ns: f64,
}

impl Profiler {
    /// A profiler on `ctx`, or `None` when the adapter has no timestamp queries.
    pub fn new(ctx: &GpuContext) -> Option<Self> {
        if !ctx.device.features().contains(wgpu::Features::TIMESTAMP_QUERY) {
            return None;
        }
        let queries = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("profiler.timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count: MAX_QUERIES,
        });
        let bytes = MAX_QUERIES as u64 * 8;
        let resolve = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("profiler.resolve"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let staging = ctx.staging_buffer("profiler.readback", bytes);
        Some(Self { queries, resolve, staging, period_ns: ctx.queue.get_timestamp_period() as f64 })
    }
}

/// What a recording did: dispatches by kernel, and (profiled) GPU milliseconds by kernel.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RecordStats {
    /// Dispatches recorded.
    pub dispatches: u64,
    /// Dispatches per kernel label.
    pub dispatches_by_kernel: BTreeMap<String, u64>,
    /// GPU milliseconds per kernel label (empty without a profiler).
    pub gpu_ms: BTreeMap<String, f64>,
    /// Dispatches that were not timed because the query set was full.
    pub untimed: u64,
}

impl RecordStats {
    /// Adds another recording's counts and times to these.
    pub fn add(&mut self, other: &RecordStats) {
        self.dispatches += other.dispatches;
        self.untimed += other.untimed;
        for (k, v) in &other.dispatches_by_kernel {
            *self.dispatches_by_kernel.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.gpu_ms {
            *self.gpu_ms.entry(k.clone()).or_default() += v;
        }
    }
}

/// Records dispatches into one command encoder (see the module docs).
pub struct Recorder<'p> {
    encoder: Option<wgpu::CommandEncoder>,
    pass: Option<wgpu::ComputePass<'static>>,
    label: &'static str,
    profiler: Option<&'p Profiler>,
    /// Kernel label of each timed dispatch, in query order.
    timed: Vec<&'static str>,
    stats: RecordStats,
}

impl<'p> Recorder<'p> {
    /// A recorder whose passes carry `label`; with `profiler`, each dispatch is timed.
    pub fn new(ctx: &GpuContext, label: &'static str, profiler: Option<&'p Profiler>) -> Self {
        let encoder = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
        Self { encoder: Some(encoder), pass: None, label, profiler, timed: Vec::new(), stats: RecordStats::default() }
    }

    fn end_pass(&mut self) {
        self.pass = None;
    }

    /// Records `pipeline` with `groups` bound at 0, 1, ... (each with its dynamic offsets) over
    /// `grid` workgroups; `kernel` names it in the counts and the profile.
    pub fn dispatch(
        &mut self,
        kernel: &'static str,
        pipeline: &wgpu::ComputePipeline,
        groups: &[(&wgpu::BindGroup, &[u32])],
        grid: (u32, u32, u32),
    ) {
        self.stats.dispatches += 1;
        *self.stats.dispatches_by_kernel.entry(kernel.to_string()).or_default() += 1;
        let next_query = 2 * self.timed.len() as u32;
        let timestamps = match self.profiler {
            Some(p) if next_query + 2 <= MAX_QUERIES => {
                self.timed.push(kernel);
                Some(p)
            }
            Some(_) => {
                self.stats.untimed += 1;
                None
            }
            None => None,
        };
        if let Some(p) = timestamps {
            self.end_pass();
            let encoder = self.encoder.as_mut().expect("the encoder lives until finish");
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(kernel),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: &p.queries,
                    beginning_of_pass_write_index: Some(next_query),
                    end_of_pass_write_index: Some(next_query + 1),
                }),
            });
            dispatch(&mut pass, pipeline, groups, grid);
            return;
        }
        if self.pass.is_none() {
            let encoder = self.encoder.as_mut().expect("the encoder lives until finish");
            let pass = encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(self.label), timestamp_writes: None });
            self.pass = Some(pass.forget_lifetime());
        }
        dispatch(self.pass.as_mut().expect("begun above"), pipeline, groups, grid);
    }

    /// The encoder, for copies between dispatches (ends the current pass).
    pub fn encoder(&mut self) -> &mut wgpu::CommandEncoder {
        self.end_pass();
        self.encoder.as_mut().expect("the encoder lives until finish")
    }

    /// Ends recording: the encoder (with the profile's query resolution appended) and the counts.
    pub fn finish(mut self) -> (wgpu::CommandEncoder, Profile) {
        self.end_pass();
        let mut encoder = self.encoder.take().expect("the encoder lives until finish");
        let n = 2 * self.timed.len() as u32;
        if let (Some(p), true) = (self.profiler, n > 0) {
            encoder.resolve_query_set(&p.queries, 0..n, &p.resolve, 0);
            encoder.copy_buffer_to_buffer(&p.resolve, 0, &p.staging, 0, Some(n as u64 * 8));
        }
        let stats = std::mem::take(&mut self.stats);
        (encoder, Profile { stats, timed: std::mem::take(&mut self.timed), profiler: self.profiler.is_some() })
    }
}

/// Records one dispatch of `pipeline` into `pass` with `groups` bound at 0, 1, ... (each with its
/// dynamic offsets) over `grid` workgroups.
pub fn dispatch(
    pass: &mut wgpu::ComputePass<'_>,
    pipeline: &wgpu::ComputePipeline,
    groups: &[(&wgpu::BindGroup, &[u32])],
    grid: (u32, u32, u32),
) {
    pass.set_pipeline(pipeline);
    for (i, (bg, offsets)) in groups.iter().enumerate() {
        pass.set_bind_group(i as u32, *bg, offsets);
    }
    pass.dispatch_workgroups(grid.0, grid.1, grid.2);
}

/// The counts of a finished recording, and the timestamps to read once it has run.
pub struct Profile {
    stats: RecordStats,
    timed: Vec<&'static str>,
    profiler: bool,
}

impl Profile {
    /// The counts, and, with a profiler, the GPU time per kernel read back after the submission
    /// has completed (waiting at most `timeout`).
    pub fn read(self, ctx: &GpuContext, profiler: Option<&Profiler>, timeout: Duration) -> Result<RecordStats> {
        let mut stats = self.stats;
        let (Some(p), true) = (profiler, self.profiler && !self.timed.is_empty()) else { return Ok(stats) };
        let n = 2 * self.timed.len();
        let words = ctx.read_staging(&p.staging, 2 * n, None, timeout)?;
        let ticks: Vec<u64> =
            words.chunks_exact(2).map(|w| (w[0].to_bits() as u64) | ((w[1].to_bits() as u64) << 32)).collect();
        for (i, kernel) in self.timed.iter().enumerate() {
            let (start, end) = (ticks[2 * i], ticks[2 * i + 1]);
            if end < start {
                return Err(Error::Gpu(format!("timestamp of {kernel} ended before it began")));
            }
            *stats.gpu_ms.entry(kernel.to_string()).or_default() += (end - start) as f64 * p.period_ns / 1e6;
        }
        Ok(stats)
    }

    /// Dispatches recorded.
    pub fn dispatches(&self) -> u64 {
        self.stats.dispatches
    }
}
