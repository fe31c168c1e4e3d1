//! Compiled-object cache of a [`GpuContext`]: shader modules keyed by their family and task
//! (or, outside the declared families, their WGSL text), bind group layouts keyed by their
//! entries, pipeline layouts keyed by their bind group layouts, and compute pipelines keyed by
//! (module, entry point, pipeline-overridable constants, layouts). A second planner or trainer
//! on the same context therefore compiles nothing; the kernel owners in `crate::kernels` build
//! everything through here.

use std::collections::HashMap;

use crate::error::{Error, Result};

use super::GpuContext;

/// How many objects the cache has created and how many requests it served from memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    /// Shader modules compiled.
    pub modules: usize,
    /// Bind group layouts created.
    pub bind_group_layouts: usize,
    /// Pipeline layouts created.
    pub pipeline_layouts: usize,
    /// Compute pipelines created.
    pub pipelines: usize,
    /// Requests answered with an existing object.
    pub hits: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PipelineKey {
    module: wgpu::ShaderModule,
    entry: String,
    /// `(name, value.to_bits())`, in the order given.
    constants: Vec<(String, u64)>,
    layouts: Vec<wgpu::BindGroupLayout>,
}

/// What identifies a shader module in the cache.
#[derive(Debug, Clone, Copy)]
pub enum ModuleKey<'a> {
    /// A declared shader family (`kernels::Family`), whose parts are fixed: its name and the
    /// task WGSL in its task slot, if it has one.
    Declared {
        /// The family's name.
        family: &'static str,
        /// The task's WGSL functions.
        task: Option<&'a str>,
    },
    /// A module outside the declared families (a test's, a probe's), keyed by its full text.
    Text,
}

/// [`ModuleKey`] as stored: with the text it names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum OwnedModuleKey {
    Declared(&'static str, Option<String>),
    Text(String),
}

#[derive(Default)]
pub(super) struct PipelineCache {
    /// Keyed by (module, compiled without the policy's runtime checks).
    modules: HashMap<(OwnedModuleKey, bool), wgpu::ShaderModule>,
    bind_group_layouts: HashMap<Vec<wgpu::BindGroupLayoutEntry>, wgpu::BindGroupLayout>,
    pipeline_layouts: HashMap<Vec<wgpu::BindGroupLayout>, wgpu::PipelineLayout>,
    pipelines: HashMap<PipelineKey, wgpu::ComputePipeline>,
    stats: CacheStats,
}

/// What a compute pipeline is made of.
#[derive(Debug, Clone, Copy)]
pub struct PipelineDesc<'a> {
    /// Label of the pipeline (`"cem.sample_candidates"`), also used in errors.
    pub label: &'a str,
    /// Name of the shader family, used to label the module and in errors.
    pub family: &'a str,
    /// The full WGSL text of the module.
    pub source: &'a str,
    /// What identifies the module in the cache.
    pub key: ModuleKey<'a>,
    /// Entry point.
    pub entry: &'a str,
    /// Values of the module's `override` constants (e.g. `("WG_SIZE", 64.0)`).
    pub constants: &'a [(&'a str, f64)],
    /// Bind group layouts, group 0 first.
    pub layouts: &'a [&'a wgpu::BindGroupLayout],
    /// Compile without bounds checks and loop bounding. Only `kernels::runtime_checks` sets
    /// this, for sources it has vouched for (see [`super::ShaderChecks`]).
    pub trusted: bool,
}

impl GpuContext {
    fn with_cache<T>(&self, f: impl FnOnce(&mut PipelineCache) -> Result<T>) -> Result<T> {
        let mut cache = self.cache.lock().map_err(|_| Error::Gpu("the pipeline cache lock was poisoned".into()))?;
        f(&mut cache)
    }

    /// What the cache has built so far.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.lock().map(|c| c.stats).unwrap_or_default()
    }

    /// The shader module of `source`, compiled once per context (and per check setting); a
    /// compile error becomes [`Error::ShaderCompile`] naming `family`. `trusted` drops the
    /// bounds checks and loop bounding: see [`super::ShaderChecks`] for when that is sound.
    pub(crate) fn shader_module(
        &self,
        family: &str,
        source: &str,
        key: ModuleKey<'_>,
        trusted: bool,
    ) -> Result<wgpu::ShaderModule> {
        let key = match key {
            ModuleKey::Declared { family, task } => {
                (OwnedModuleKey::Declared(family, task.map(str::to_string)), trusted)
            }
            ModuleKey::Text => (OwnedModuleKey::Text(source.to_string()), trusted),
        };
        self.with_cache(|c| {
            if let Some(m) = c.modules.get(&key) {
                c.stats.hits += 1;
                return Ok(m.clone());
            }
            let desc =
                wgpu::ShaderModuleDescriptor { label: Some(family), source: wgpu::ShaderSource::Wgsl(source.into()) };
            let module = self
                .scoped(family, || {
                    if trusted {
                        let checks = wgpu::ShaderRuntimeChecks {
                            bounds_checks: false,
                            force_loop_bounding: false,
                            ..wgpu::ShaderRuntimeChecks::checked()
                        };
                        // SAFETY: `trusted` is set only by kernels::runtime_checks, for modules made
                        // entirely of the crate's own WGSL, whose indices are guarded against
                        // host-validated sizes and whose loops have finite uniform or constant
                        // bounds (the argument is on ShaderChecks).
                        unsafe { self.device.create_shader_module_trusted(desc, checks) }
                    } else {
                        self.device.create_shader_module(desc)
                    }
                })
                .map_err(|e| Error::ShaderCompile { shader: family.to_string(), message: e.to_string() })?;
            c.stats.modules += 1;
            c.modules.insert(key, module.clone());
            Ok(module)
        })
    }

    /// The bind group layout with these entries (compute stage), created once per context.
    pub fn bind_group_layout(
        &self,
        label: &str,
        entries: &[wgpu::BindGroupLayoutEntry],
    ) -> Result<wgpu::BindGroupLayout> {
        self.with_cache(|c| {
            if let Some(l) = c.bind_group_layouts.get(entries) {
                c.stats.hits += 1;
                return Ok(l.clone());
            }
            let layout = self.scoped(label, || {
                self.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(label), entries })
            })?;
            c.stats.bind_group_layouts += 1;
            c.bind_group_layouts.insert(entries.to_vec(), layout.clone());
            Ok(layout)
        })
    }

    /// The compute pipeline described by `desc`, created once per context.
    pub fn compute_pipeline(&self, desc: &PipelineDesc<'_>) -> Result<wgpu::ComputePipeline> {
        let module = self.shader_module(desc.family, desc.source, desc.key, desc.trusted)?;
        let key = PipelineKey {
            module: module.clone(),
            entry: desc.entry.to_string(),
            constants: desc.constants.iter().map(|(n, v)| (n.to_string(), v.to_bits())).collect(),
            layouts: desc.layouts.iter().map(|l| (*l).clone()).collect(),
        };
        self.with_cache(|c| {
            if let Some(p) = c.pipelines.get(&key) {
                c.stats.hits += 1;
                return Ok(p.clone());
            }
            let layout = match c.pipeline_layouts.get(&key.layouts) {
                Some(l) => l.clone(),
                None => {
                    let groups: Vec<Option<&wgpu::BindGroupLayout>> = key.layouts.iter().map(Some).collect();
                    let l = self.scoped(desc.label, || {
                        self.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                            label: Some(desc.label),
                            bind_group_layouts: &groups,
                            immediate_size: 0,
                        })
                    })?;
                    c.stats.pipeline_layouts += 1;
                    c.pipeline_layouts.insert(key.layouts.clone(), l.clone());
                    l
                }
            };
            let pipeline = self
                .scoped(desc.label, || {
                    self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                        label: Some(desc.label),
                        layout: Some(&layout),
                        module: &module,
                        entry_point: Some(desc.entry),
                        compilation_options: wgpu::PipelineCompilationOptions {
                            constants: desc.constants,
                            zero_initialize_workgroup_memory: false,
                        },
                        cache: None,
                    })
                })
                .map_err(|e| Error::ShaderCompile { shader: desc.label.to_string(), message: e.to_string() })?;
            c.stats.pipelines += 1;
            c.pipelines.insert(key, pipeline.clone());
            Ok(pipeline)
        })
    }
}
