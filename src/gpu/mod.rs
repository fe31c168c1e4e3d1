//! GPU context: adapter selection, device creation with our error handlers, limit checks,
//! buffer helpers and bounded readback. Everything GPU-side in the crate goes through
//! [`GpuContext`]; kernels (`crate::kernels`) build their pipelines on it.

mod cache;
mod recorder;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use wgpu::util::DeviceExt;

pub use cache::{CacheStats, ModuleKey, PipelineDesc};
pub use recorder::{dispatch, Profile, Profiler, RecordStats, Recorder};

use crate::error::{Error, Result};

/// How to choose the adapter.
#[derive(Debug, Clone, Default)]
pub struct AdapterOptions {
    /// Case-insensitive substring of the adapter name (also read from `LOOKAHEAD_ADAPTER` by the CLI).
    pub name: Option<String>,
    /// Restrict to one backend.
    pub backend: Option<Backend>,
    /// Runtime checks compiled into the crate's shaders (default: the policy).
    pub shader_checks: ShaderChecks,
}

/// Which of naga's runtime checks are compiled into shaders.
///
/// naga can wrap every array and buffer index in a bounds check and put a counter in every loop
/// (`force_loop_bounding`). On some drivers these checks are what the tiled layer kernel pays
/// for most: its 4×4 register tile, indexed inside loops, is spilled to local memory. The
/// policy (`kernels::runtime_checks`) compiles the crate's own kernels without them, on this
/// argument: every storage index is guarded in the shader (`if i >= n { return; }`, tile loads
/// masked by the row and column counts) against sizes the host validated and sized the
/// buffers from before anything is dispatched; every private array is indexed by counters of
/// loops with constant bounds; every loop counts up to a bound read from a uniform, so it ends.
/// Modules that contain WGSL from outside the crate (a custom task's functions) keep every
/// check. Integer-division checks stay on everywhere (they cost a select and guard divisions
/// by sizes). The test suite runs plans and training under both settings and requires the same
/// results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShaderChecks {
    /// The crate's own kernels without bounds checks and loop bounding (default).
    #[default]
    Policy,
    /// Every check on every module: for comparison and debugging.
    Full,
}

impl std::str::FromStr for ShaderChecks {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "policy" => Ok(ShaderChecks::Policy),
            "full" => Ok(ShaderChecks::Full),
            other => Err(Error::config("shader_checks", format!("unknown value {other:?}; expected policy or full"))),
        }
    }
}

/// Graphics API used to reach the GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Vulkan (Linux, Windows, Android; lavapipe on machines without a GPU).
    Vulkan,
    /// Metal (macOS, iOS).
    Metal,
    /// Direct3D 12 (Windows).
    Dx12,
    /// OpenGL / GLES.
    Gl,
}

impl Backend {
    fn backends(self) -> wgpu::Backends {
        match self {
            Backend::Vulkan => wgpu::Backends::VULKAN,
            Backend::Metal => wgpu::Backends::METAL,
            Backend::Dx12 => wgpu::Backends::DX12,
            Backend::Gl => wgpu::Backends::GL,
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "vulkan" => Ok(Backend::Vulkan),
            "metal" => Ok(Backend::Metal),
            "dx12" => Ok(Backend::Dx12),
            "gl" | "gles" => Ok(Backend::Gl),
            other => {
                Err(Error::config("backend", format!("unknown backend {other:?}; expected vulkan, metal, dx12 or gl")))
            }
        }
    }
}

/// Name, backend and driver of the adapter in use (printed by every report).
#[derive(Debug, Clone, serde::Serialize)]
pub struct AdapterSummary {
    /// Adapter name, e.g. "NVIDIA H100 80GB HBM3" or "llvmpipe (LLVM 15.0.6, 256 bits)".
    pub name: String,
    /// Backend, e.g. "vulkan".
    pub backend: String,
    /// Driver name and version.
    pub driver: String,
    /// Device type: DiscreteGpu, IntegratedGpu, VirtualGpu, Cpu or Other.
    pub device_type: String,
}

impl std::fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, {}, {})", self.name, self.backend, self.device_type, self.driver)
    }
}

fn summarize(info: &wgpu::AdapterInfo) -> AdapterSummary {
    AdapterSummary {
        name: info.name.clone(),
        backend: format!("{:?}", info.backend).to_lowercase(),
        driver: format!("{} {}", info.driver, info.driver_info).trim().to_string(),
        device_type: format!("{:?}", info.device_type),
    }
}

/// Errors reported by wgpu outside of an error scope, and device loss; checked after each
/// submission instead of panicking (wgpu's default handler panics).
#[derive(Default)]
struct ErrorSink {
    uncaptured: Mutex<Vec<String>>,
    lost: Mutex<Option<String>>,
}

/// Instance, adapter, device and queue, with the error handlers installed.
#[derive(Clone)]
pub struct GpuContext {
    /// The wgpu device.
    pub device: wgpu::Device,
    /// The queue of `device`.
    pub queue: wgpu::Queue,
    adapter: wgpu::Adapter,
    summary: AdapterSummary,
    limits: wgpu::Limits,
    sink: Arc<ErrorSink>,
    cache: Arc<Mutex<cache::PipelineCache>>,
    shader_checks: ShaderChecks,
}

fn type_rank(t: wgpu::DeviceType) -> u32 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

fn backend_rank(b: wgpu::Backend) -> u32 {
    match b {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    }
}

/// Mesa's implicit Vulkan layer `VK_LAYER_MESA_device_select` connects to a Wayland and an X
/// display while devices are enumerated, only to order them by the display's GPU, and prints
/// "error: XDG_RUNTIME_DIR is invalid or not set" on every command on a machine without one.
/// We rank adapters ourselves, so on such machines (no `DISPLAY`, no `WAYLAND_DISPLAY`) the
/// layer is switched off through its documented `NODEVICE_SELECT=1`, once, before the first
/// Vulkan instance; a value the user set is left alone.
fn quiet_headless_vulkan_layers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let headless = std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none();
        if headless && std::env::var_os("NODEVICE_SELECT").is_none() {
            std::env::set_var("NODEVICE_SELECT", "1");
        }
    });
}

/// Lists the adapters wgpu can see on `backend` (every backend compiled in when `None`).
pub fn list_adapters(backend: Option<Backend>) -> Vec<AdapterSummary> {
    quiet_headless_vulkan_layers();
    let backends = backend.map_or(wgpu::Backends::all(), Backend::backends);
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backends;
    let instance = wgpu::Instance::new(desc);
    pollster::block_on(instance.enumerate_adapters(backends)).iter().map(|a| summarize(&a.get_info())).collect()
}

/// The device features of `mlp_coop.wgsl`: cooperative matrices, f16 in shaders and subgroups
/// (its `subgroup_id` says which column tiles a subgroup computes).
pub const COOP16_FEATURES: wgpu::Features =
    wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX.union(wgpu::Features::SHADER_F16).union(wgpu::Features::SUBGROUP);

/// Whether `adapter` offers what `mlp_coop.wgsl` needs: [`COOP16_FEATURES`], a 16×16×16
/// cooperative-matrix configuration with f16 operands and f32 accumulators, and one subgroup
/// size (a workgroup of the kernel is a fixed number of whole subgroups). On an H100 through Vulkan the driver lists
/// f16 (and int8/bf16) configurations, none with f32 operands.
pub fn offers_coop16(adapter: &wgpu::Adapter) -> bool {
    use wgpu::CooperativeScalarType as T;
    let info = adapter.get_info();
    adapter.features().contains(COOP16_FEATURES)
        && info.subgroup_min_size == info.subgroup_max_size
        && info.subgroup_min_size > 0
        && adapter
            .cooperative_matrix_properties()
            .iter()
            .any(|p| (p.m_size, p.n_size, p.k_size) == (16, 16, 16) && p.ab_type == T::F16 && p.cr_type == T::F32)
}

/// The best adapter matching `opts` (see [`GpuContext::new`]); an error that lists every
/// adapter seen when none matches.
fn choose_adapter(opts: &AdapterOptions) -> Result<wgpu::Adapter> {
    quiet_headless_vulkan_layers();
    let named = |a: &wgpu::Adapter| match &opts.name {
        Some(n) => a.get_info().name.to_lowercase().contains(&n.to_lowercase()),
        None => true,
    };
    // Native backends first; GL only when asked for or when nothing else exists (probing GL
    // costs time and prints EGL warnings on headless machines).
    let tries = match opts.backend {
        Some(b) => vec![b.backends()],
        None => vec![wgpu::Backends::PRIMARY, wgpu::Backends::GL],
    };
    let mut adapters = Vec::new();
    // Every adapter seen on any backend tried, for the message when none matches.
    let mut all: Vec<String> = Vec::new();
    for backends in tries {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = backends;
        let instance = wgpu::Instance::new(desc);
        adapters = pollster::block_on(instance.enumerate_adapters(backends));
        all.extend(adapters.iter().map(|a| summarize(&a.get_info()).to_string()));
        if adapters.iter().any(named) {
            break;
        }
    }
    let mut candidates: Vec<wgpu::Adapter> = adapters.into_iter().filter(named).collect();
    candidates.sort_by_key(|a| {
        let info = a.get_info();
        (type_rank(info.device_type), backend_rank(info.backend))
    });
    candidates.into_iter().next().ok_or_else(|| no_adapter(opts, &all))
}

/// The error when no adapter matches `opts`, with every adapter seen (`all`) or how to get one.
fn no_adapter(opts: &AdapterOptions, all: &[String]) -> Error {
    let mut detail = String::new();
    if let Some(n) = &opts.name {
        detail.push_str(&format!(" matching name {n:?}"));
    }
    if let Some(b) = opts.backend {
        detail.push_str(&format!(" on backend {b:?}"));
    }
    let hint = if all.is_empty() {
        "On Linux without a GPU install the lavapipe software Vulkan driver: `apt-get update && apt-get install -y mesa-vulkan-drivers`"
    } else {
        detail.push_str(&format!(" (available: {})", all.join("; ")));
        "Choose one of the available adapters with --adapter (a substring of its name) or --backend \
         (Context(adapter, backend) in Python)."
    };
    Error::NoAdapter { detail, hint }
}

/// Opens `adapter`'s device with every limit it offers (plans are sized against them),
/// timestamps where it has them (`bench --profile`), and tensor cores where it offers the
/// configuration `mlp_coop.wgsl` is written for (`planner.mlp_kernel = coop16`).
fn open_device(adapter: &wgpu::Adapter) -> Result<(wgpu::Device, wgpu::Queue)> {
    let limits = adapter.limits();
    let base_features = adapter.features() & wgpu::Features::TIMESTAMP_QUERY;
    let open = |tensor_cores: bool| {
        let required_features = if tensor_cores { base_features | COOP16_FEATURES } else { base_features };
        pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("lookahead"),
            required_features,
            required_limits: limits.clone(),
            experimental_features: if tensor_cores {
                // SAFETY: the only experimental feature requested is cooperative matrices,
                // used by one module (mlp_coop.wgsl) that the planner runs only when asked to
                // (`mlp_kernel = coop16`, never `auto`); its results are checked against an
                // f64 reference by `lookahead verify` (family mlp.coop16) where it runs.
                unsafe { wgpu::ExperimentalFeatures::enabled() }
            } else {
                wgpu::ExperimentalFeatures::disabled()
            },
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
    };
    // Tensor cores are an extra: a device that refuses them is opened without them (coop16
    // is then refused with the reason, everything else runs as before).
    let opened = match offers_coop16(adapter) {
        true => open(true).or_else(|_| open(false)),
        false => open(false),
    };
    opened.map_err(|e| Error::RequestDevice(e.to_string()))
}

impl ErrorSink {
    /// A sink installed on `device` as its handler of uncaptured errors and of device loss.
    fn install(device: &wgpu::Device) -> Arc<Self> {
        let sink = Arc::new(ErrorSink::default());
        let s = sink.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = s.uncaptured.lock() {
                v.push(e.to_string());
            }
        }));
        let s = sink.clone();
        device.set_device_lost_callback(move |reason, msg| {
            if let Ok(mut l) = s.lost.lock() {
                *l = Some(format!("{reason:?}: {msg}"));
            }
        });
        sink
    }
}

impl GpuContext {
    /// Opens the best adapter matching `opts`: a discrete GPU before an integrated one before a
    /// software rasteriser, and a native backend (Vulkan, Metal, DX12) before GL.
    pub fn new(opts: &AdapterOptions) -> Result<Self> {
        let adapter = choose_adapter(opts)?;
        let summary = summarize(&adapter.get_info());
        let (device, queue) = open_device(&adapter)?;
        let sink = ErrorSink::install(&device);
        let limits = device.limits();
        Ok(Self {
            device,
            queue,
            adapter,
            summary,
            limits,
            sink,
            cache: Arc::default(),
            shader_checks: opts.shader_checks,
        })
    }

    /// Name, backend and driver of the adapter.
    pub fn adapter(&self) -> &AdapterSummary {
        &self.summary
    }

    /// The runtime-check setting the context was opened with.
    pub fn shader_checks(&self) -> ShaderChecks {
        self.shader_checks
    }

    /// The device's limits.
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// The wgpu adapter (for features and detailed info).
    pub fn wgpu_adapter(&self) -> &wgpu::Adapter {
        &self.adapter
    }

    /// True when the device was opened with 16×16×16 cooperative matrices (f16 operands, f32
    /// accumulators) and f16 in shaders, and runs them one subgroup size ([`offers_coop16`]).
    pub fn has_coop16(&self) -> bool {
        self.device.features().contains(COOP16_FEATURES) && offers_coop16(&self.adapter)
    }

    /// The subgroup size, where the adapter has exactly one (NVIDIA: 32).
    pub fn fixed_subgroup_size(&self) -> Option<u32> {
        let info = self.adapter.get_info();
        (info.subgroup_min_size == info.subgroup_max_size && info.subgroup_min_size > 0)
            .then_some(info.subgroup_min_size)
    }

    /// True for CPU rasterisers such as lavapipe/llvmpipe.
    pub fn is_software(&self) -> bool {
        self.summary.device_type == "Cpu" || self.summary.name.to_lowercase().contains("llvmpipe")
    }

    /// Returns the first error reported since the last check (device loss first).
    pub fn check(&self) -> Result<()> {
        if let Some(reason) = self.sink.lost.lock().ok().and_then(|l| l.clone()) {
            return Err(Error::DeviceLost { reason });
        }
        if let Ok(mut v) = self.sink.uncaptured.lock() {
            if !v.is_empty() {
                let msg = v.join("\n");
                v.clear();
                return Err(Error::Gpu(msg));
            }
        }
        Ok(())
    }

    /// Runs `f` inside validation and out-of-memory error scopes and reports what they caught.
    pub fn scoped<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        let v = pollster::block_on(validation.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = o {
            let _ = e;
            return Err(Error::OutOfMemory { what: what.to_string() });
        }
        if let Some(e) = v {
            return Err(Error::Gpu(format!("{what}: {e}")));
        }
        self.check()?;
        Ok(value)
    }

    /// Checks a buffer size against `max_buffer_size` (and, for storage buffers,
    /// `max_storage_buffer_binding_size`) before anything is created.
    pub fn check_buffer_size(&self, what: &str, bytes: u64, storage: bool, hint: &'static str) -> Result<()> {
        if bytes > self.limits.max_buffer_size {
            return Err(Error::LimitExceeded {
                what: what.to_string(),
                requested: bytes,
                limit: "max_buffer_size",
                max: self.limits.max_buffer_size,
                hint,
            });
        }
        if storage && bytes > self.limits.max_storage_buffer_binding_size {
            return Err(Error::LimitExceeded {
                what: what.to_string(),
                requested: bytes,
                limit: "max_storage_buffer_binding_size",
                max: self.limits.max_storage_buffer_binding_size,
                hint,
            });
        }
        Ok(())
    }

    /// A storage buffer of `len` f32/u32 elements (at least one, so bindings are never empty).
    pub fn storage_buffer(&self, label: &str, len: usize) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (len.max(1) * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    }

    /// A storage buffer initialised with `data`.
    pub fn storage_buffer_init<T: bytemuck::Pod>(&self, label: &str, data: &[T]) -> wgpu::Buffer {
        if data.is_empty() {
            return self.storage_buffer(label, 1);
        }
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytemuck::cast_slice(data),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
        })
    }

    /// A uniform buffer initialised with `data`.
    pub fn uniform_buffer_init<T: bytemuck::Pod>(&self, label: &str, data: &[T]) -> wgpu::Buffer {
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytemuck::cast_slice(data),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        })
    }

    /// A mappable buffer for reading results back.
    pub fn staging_buffer(&self, label: &str, bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// Submits `encoder`, waits at most `timeout` and reads `len` f32 values of `staging`
    /// (which the encoder must have filled).
    pub fn submit_and_read(
        &self,
        encoder: wgpu::CommandEncoder,
        staging: &wgpu::Buffer,
        len: usize,
        timeout: Duration,
    ) -> Result<Vec<f32>> {
        let index = self.queue.submit(Some(encoder.finish()));
        self.read_staging(staging, len, Some(index), timeout)
    }

    /// Maps `staging` after submission `index` completes (bounded by `timeout`) and copies out `len` f32.
    pub fn read_staging(
        &self,
        staging: &wgpu::Buffer,
        len: usize,
        index: Option<wgpu::SubmissionIndex>,
        timeout: Duration,
    ) -> Result<Vec<f32>> {
        let bytes = (len * 4) as u64;
        let slice = staging.slice(0..bytes.max(4));
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        if let Err(e) = self.wait(index, timeout) {
            if matches!(e, Error::Timeout { .. }) {
                staging.unmap();
            }
            return Err(e);
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Error::Gpu(format!("mapping the readback buffer failed: {e}"))),
            Err(_) => return Err(Error::Timeout { waited: timeout }),
        }
        let out = {
            let view = staging
                .slice(0..bytes.max(4))
                .get_mapped_range()
                .map_err(|e| Error::Gpu(format!("reading the readback buffer: {e:?}")))?;
            bytemuck::cast_slice::<u8, f32>(&view)[..len].to_vec()
        };
        staging.unmap();
        Ok(out)
    }

    /// Waits at most `timeout` for submission `index` (all submitted work when `None`); the one
    /// bounded GPU wait of the crate. A wait that runs out is [`Error::Timeout`] (the work goes
    /// on and may be waited for again); device errors reported meanwhile come first.
    pub fn wait(&self, index: Option<wgpu::SubmissionIndex>, timeout: Duration) -> Result<()> {
        match self.device.poll(wgpu::PollType::Wait { submission_index: index, timeout: Some(timeout) }) {
            Ok(_) => self.check(),
            Err(wgpu::PollError::Timeout) => {
                self.check()?;
                Err(Error::Timeout { waited: timeout })
            }
            Err(e) => {
                self.check()?;
                Err(Error::Gpu(e.to_string()))
            }
        }
    }

    /// Copies `len` 4-byte elements of `buffer` to the host (a convenience for tests and tools;
    /// hot paths keep their own staging buffers).
    pub fn read_buffer<T: bytemuck::Pod>(&self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<T>> {
        let staging = self.staging_buffer("readback", (len * 4) as u64);
        let mut encoder =
            self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("readback") });
        encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, Some((len * 4) as u64));
        let v = self.submit_and_read(encoder, &staging, len, Duration::from_secs(120))?;
        Ok(bytemuck::cast_slice::<f32, T>(&v).to_vec())
    }
}

/// Workgroup counts (x, y) covering `n` invocations of `wg` threads, folding into y when x would
/// exceed `max_per_dim`; kernels recover the flat index as `gid.x + gid.y · nwg.x · wg`.
pub fn grid_1d(n: u32, wg: u32, max_per_dim: u32) -> Result<(u32, u32)> {
    let groups = n.div_ceil(wg).max(1);
    if groups <= max_per_dim {
        return Ok((groups, 1));
    }
    let y = groups.div_ceil(max_per_dim);
    if y > max_per_dim {
        return Err(Error::LimitExceeded {
            what: format!("{n} invocations in workgroups of {wg}"),
            requested: groups as u64,
            limit: "max_compute_workgroups_per_dimension²",
            max: max_per_dim as u64 * max_per_dim as u64,
            hint: "lower population, particles or batch size",
        });
    }
    let x = groups.div_ceil(y);
    Ok((x, y))
}
