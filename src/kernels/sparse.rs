//! Families whose entry points each bind only the group-1 buffers they use (`sac.wgsl`,
//! `mbpo.wgsl`): a module may declare more storage buffers than a stage can bind (8 on many
//! adapters) as long as no entry point uses more. Group 0 is one uniform with a dynamic offset.

use super::family::TaskWgsl;
use super::{params_layout, storage_entry, Family, WG_SIZE_OVERRIDE};
use crate::error::Result;
use crate::gpu::GpuContext;

/// An entry point's group-1 bindings: `(binding, read-only)`, in the order
/// [`SparseKernels::bind`] takes buffers.
pub type EntryBindings = (&'static str, &'static [(u32, bool)]);

/// One entry point: its pipeline, its group-1 layout and binding numbers.
pub struct SparseKernel {
    /// The pipeline (group 0 the uniform, group 1 `layout`).
    pub pipeline: wgpu::ComputePipeline,
    /// Group 1.
    pub layout: wgpu::BindGroupLayout,
    /// The binding numbers of group 1, in the order [`SparseKernels::bind`] takes buffers.
    pub bindings: Vec<u32>,
}

/// Every entry point of one family, each with its own group-1 layout.
pub struct SparseKernels {
    family: Family,
    /// Group 0: one uniform of the family's parameters with a dynamic offset.
    pub params: wgpu::BindGroupLayout,
    /// By entry point name.
    pub kernels: Vec<(&'static str, SparseKernel)>,
}

impl SparseKernels {
    /// Builds (or takes from the context's cache) the pipeline of every entry point of
    /// `bindings`, with uniform `P` in group 0 and `task` in the family's task slot; the entry
    /// points of `fixed_size` declare their own workgroup size (no `WG_SIZE` override).
    pub fn new<P>(
        ctx: &GpuContext,
        family: Family,
        task: Option<TaskWgsl<'_>>,
        bindings: &[EntryBindings],
        fixed_size: &[&str],
    ) -> Result<Self> {
        let name = family.name();
        let params = params_layout::<P>(ctx, &format!("{name}.params"))?;
        let mut kernels = Vec::new();
        for (entry, entry_bindings) in bindings {
            let entries: Vec<_> = entry_bindings.iter().map(|(b, ro)| storage_entry(*b, *ro)).collect();
            let layout = ctx.bind_group_layout(&format!("{name}.{entry}"), &entries)?;
            let constants = if fixed_size.contains(entry) { &[][..] } else { WG_SIZE_OVERRIDE };
            let pipeline = family.pipeline(ctx, task, entry, &[&params, &layout], constants)?;
            let numbers = entry_bindings.iter().map(|b| b.0).collect();
            kernels.push((*entry, SparseKernel { pipeline, layout, bindings: numbers }));
        }
        Ok(Self { family, params, kernels })
    }

    /// The entry point `entry`.
    pub fn get(&self, entry: &str) -> &SparseKernel {
        &self.kernels.iter().find(|(e, _)| *e == entry).expect("a declared entry point").1
    }

    /// `entry`'s group-1 bind group over `buffers`, in its binding order.
    pub fn bind(&self, ctx: &GpuContext, entry: &str, buffers: &[&wgpu::Buffer]) -> wgpu::BindGroup {
        let k = self.get(entry);
        let label = format!("{}.{entry}", self.family.name());
        assert_eq!(buffers.len(), k.bindings.len(), "{label}: one buffer per binding");
        let entries: Vec<wgpu::BindGroupEntry> = k
            .bindings
            .iter()
            .zip(buffers)
            .map(|(b, buf)| wgpu::BindGroupEntry { binding: *b, resource: buf.as_entire_binding() })
            .collect();
        ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&label),
            layout: &k.layout,
            entries: &entries,
        })
    }
}
