//! Shader families, each declared once.
//!
//! A family is one WGSL module shape: the crate's source parts in concatenation order (with a
//! slot for a task's WGSL functions where the family has one), the entry points the crate
//! uses, and what it needs of the adapter. Each owner in `kernels` exports its declaration
//! ([`FamilyDecl`]); the [`Family`] enum lists them, and everything else is derived from that
//! list: the pipelines ([`Family::pipeline`], the only way a family is compiled), the
//! pipeline-cache key (family and task text, [`crate::gpu::ModuleKey`]), the runtime-check
//! policy (a family's own parts are the crate's by construction; only the task slot can hold
//! outside text), and the modules naga validates and translates ([`shaders`], coop16 included).

use crate::error::{Error, Result};
use crate::gpu::{GpuContext, ModuleKey, PipelineDesc, ShaderChecks};

use super::{
    adam, cem, loss, mbpo, mlp, mlp_coop, mlp_fused, mlp_grads, model_step, rollout, sac, ENV_SOURCES, WG_SIZE,
};

/// One piece of a family's WGSL, in concatenation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// A WGSL file of the crate.
    Wgsl(&'static str),
    /// Where a task's WGSL functions (`env_reward`, `env_terminated`, `env_step`) go.
    Task,
}

/// What a family needs of the adapter beyond the portable kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requires {
    /// Runs on every adapter (WGSL without extensions).
    Portable,
    /// 16×16×16 f16 cooperative matrices, f16 and subgroups (`GpuContext::has_coop16`).
    Coop16,
}

/// The declaration of one shader family (see the module docs).
#[derive(Debug)]
pub struct FamilyDecl {
    /// Name, used in labels, errors and the cache key (`"cem"`; with a task, `"rollout/cartpole"`).
    pub name: &'static str,
    /// The parts, in concatenation order.
    pub parts: &'static [Part],
    /// The entry points the crate builds pipelines of.
    pub entry_points: &'static [&'static str],
    /// What the adapter must offer.
    pub requires: Requires,
    /// Override values naga resolves the module with in the validation test, one set per shape
    /// the host picks; empty: the WGSL defaults (and `WG_SIZE` where declared).
    pub validation_overrides: &'static [&'static [(&'static str, f64)]],
    /// Overrides every pipeline of the family sets (after the caller's), validation included.
    pub fixed_overrides: &'static [(&'static str, f64)],
}

impl FamilyDecl {
    /// A family of WGSL without extensions whose overrides all have usable defaults.
    pub const fn portable(name: &'static str, parts: &'static [Part], entry_points: &'static [&'static str]) -> Self {
        Self {
            name,
            parts,
            entry_points,
            requires: Requires::Portable,
            validation_overrides: &[],
            fixed_overrides: &[],
        }
    }

    /// Whether the family has a slot for a task's WGSL.
    pub fn has_task_slot(&self) -> bool {
        self.parts.contains(&Part::Task)
    }

    /// The line of the full WGSL text on which the task slot's text begins (1-based).
    pub fn task_first_line(&self) -> usize {
        let before = self.parts.iter().take_while(|p| **p != Part::Task);
        1 + before.map(|p| if let Part::Wgsl(text) = p { text.matches('\n').count() } else { 0 }).sum::<usize>()
    }

    /// The full WGSL text, with `task` in the task slot.
    pub fn source(&self, task: Option<&str>) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Wgsl(text) => *text,
                Part::Task => task.unwrap_or(""),
            })
            .collect()
    }
}

/// A task's WGSL functions and the task's name (for labels), put in a family's task slot.
#[derive(Debug, Clone, Copy)]
pub struct TaskWgsl<'a> {
    /// The task's name (`"cartpole"`).
    pub name: &'a str,
    /// Its WGSL functions.
    pub wgsl: &'a str,
}

/// The `WG_SIZE` override, for the pipelines of entry points sized by it.
pub const WG_SIZE_OVERRIDE: &[(&str, f64)] = &[("WG_SIZE", WG_SIZE as f64)];

macro_rules! families {
    ($($(#[$doc:meta])* $variant:ident => $decl:path,)*) => {
        /// Every shader family of the crate: a family not listed here cannot be compiled.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Family {
            $($(#[$doc])* $variant,)*
        }

        impl Family {
            /// Every family, in declaration order.
            pub const ALL: &'static [Family] = &[$(Family::$variant,)*];

            /// The family's declaration, exported by its owner.
            pub fn decl(self) -> &'static FamilyDecl {
                match self {
                    $(Family::$variant => &$decl,)*
                }
            }
        }
    };
}

families! {
    /// `mlp.wgsl`: per-layer tiled forward and backward passes (`mlp::MlpKernels`).
    Mlp => mlp::FAMILY,
    /// `mlp_rows.wgsl`: one invocation per row (`mlp::MlpRowsKernels`).
    MlpRows => mlp::ROWS_FAMILY,
    /// `mlp_grads.wgsl`: every layer's weight and bias gradients (`mlp_grads::MlpGradsKernels`).
    MlpGrads => mlp_grads::FAMILY,
    /// `mlp_fused.wgsl` + `mlp_fused_net.wgsl`: the whole network in one dispatch.
    MlpFused => mlp_fused::FAMILY,
    /// `mlp_coop.wgsl` + `mlp_coop_net.wgsl`: the network on cooperative matrices.
    MlpCoop => mlp_coop::FAMILY,
    /// `model_step.wgsl` on the fused layers: a whole model step in one dispatch.
    ModelStep => model_step::FAMILY,
    /// `model_step.wgsl` on the cooperative-matrix layers.
    ModelStepCoop => model_step::COOP_FAMILY,
    /// `rollout.wgsl`: trajectory-sampling rollouts of a learned ensemble.
    Rollout => rollout::FAMILY,
    /// `analytic.wgsl`: rollouts with the task's own dynamics.
    Analytic => rollout::ANALYTIC_FAMILY,
    /// `env_eval.wgsl`: a task's reward and termination on given transitions.
    EnvEval => rollout::ENV_EVAL_FAMILY,
    /// `cem.wgsl`: sampling and distribution updates of every planner kind.
    Cem => cem::FAMILY,
    /// `loss.wgsl`: minibatch gathering, the loss and its gradient.
    Loss => loss::FAMILY,
    /// `adam.wgsl`: gradient norm and the Adam update.
    Adam => adam::FAMILY,
    /// `sac.wgsl`: Soft Actor-Critic's draws, policy, losses' gradients and Polyak averaging.
    Sac => sac::FAMILY,
    /// `mbpo.wgsl`: MBPO's branched rollouts through the ensemble into the model ring.
    Mbpo => mbpo::FAMILY,
}

impl Family {
    /// The family's name.
    pub fn name(self) -> &'static str {
        self.decl().name
    }

    /// The pipeline of `entry` (one of the declared entry points) with `task` in the task slot
    /// (given exactly when the family has one) and the override `constants`, through the
    /// context's cache. Compiled without runtime checks under the policy when every part is the
    /// crate's own ([`runtime_checks_off`]).
    pub fn pipeline(
        self,
        ctx: &GpuContext,
        task: Option<TaskWgsl<'_>>,
        entry: &str,
        layouts: &[&wgpu::BindGroupLayout],
        constants: &[(&str, f64)],
    ) -> Result<wgpu::ComputePipeline> {
        let decl = self.decl();
        if !decl.entry_points.contains(&entry) {
            return Err(Error::Gpu(format!("{}: {entry} is not a declared entry point", decl.name)));
        }
        if decl.has_task_slot() != task.is_some() {
            let why = if decl.has_task_slot() { "needs a task's WGSL" } else { "has no task slot" };
            return Err(Error::Gpu(format!("{}: the family {why}", decl.name)));
        }
        let name = match task {
            Some(t) => format!("{}/{}", decl.name, t.name),
            None => decl.name.to_string(),
        };
        let source = decl.source(task.map(|t| t.wgsl));
        let constants: Vec<(&str, f64)> = constants.iter().chain(decl.fixed_overrides).copied().collect();
        ctx.compute_pipeline(&PipelineDesc {
            label: &format!("{name}.{entry}"),
            family: &name,
            source: &source,
            key: ModuleKey::Declared { family: decl.name, task: task.map(|t| t.wgsl) },
            entry,
            constants: &constants,
            layouts,
            trusted: runtime_checks_off(ctx, task.map(|t| t.wgsl)),
        })
        .map_err(|e| match task {
            Some(t) => in_task_lines(e, t, decl.task_first_line()),
            None => e,
        })
    }
}

/// A compile error of a module holding `task`'s WGSL from line `first` on, with every location
/// inside the task's text given in the task's own lines (`wgsl:232:5` becomes `mytask:5:5`, and
/// the quoted line's number with it), so that it points into the text its author wrote; an
/// error elsewhere is said to lie in the crate's code that calls the task's functions.
fn in_task_lines(e: Error, task: TaskWgsl<'_>, first: usize) -> Error {
    let Error::ShaderCompile { shader, message } = e else { return e };
    let in_task = |l: usize| (first..first + task.wgsl.lines().count()).contains(&l).then(|| l + 1 - first);
    let mut translated = false;
    let lines: Vec<String> = message
        .lines()
        .map(|line| {
            let (out, hit) = translate_line(line, task.name, &in_task);
            translated |= hit;
            out
        })
        .collect();
    let mut message = lines.join("\n");
    if !translated && message.contains("wgsl:") {
        message.push_str(&format!(
            "\n(the error lies in the crate's code around task {}'s functions: check that it defines \
             env_reward, env_terminated and, for known dynamics, env_step with the documented signatures)",
            task.name
        ));
    }
    Error::ShaderCompile { shader, message }
}

/// `line` of a compiler message with a location `wgsl:L:C` or a quoted line's number `L │`
/// inside the task (`task_line(L)`) rewritten in the task's lines; whether it was.
fn translate_line(line: &str, name: &str, task_line: &dyn Fn(usize) -> Option<usize>) -> (String, bool) {
    let digits = |s: &str| s.chars().take_while(char::is_ascii_digit).collect::<String>();
    if let Some(at) = line.find("wgsl:") {
        let n = digits(&line[at + 5..]);
        if let Some(l) = n.parse().ok().and_then(task_line) {
            return (format!("{}{name}:{l}{}", &line[..at], &line[at + 5 + n.len()..]), true);
        }
    }
    let indent = line.len() - line.trim_start().len();
    let n = digits(&line[indent..]);
    if !n.is_empty() && line[indent + n.len()..].starts_with(" │") {
        if let Some(l) = n.parse().ok().and_then(task_line) {
            let width = indent + n.len();
            return (format!("{l:>width$}{}", &line[width..]), true);
        }
    }
    (line.to_string(), false)
}

/// A module outside the declared families (a test's or a probe's WGSL), always compiled with
/// every runtime check and cached by its text.
pub fn custom_pipeline(
    ctx: &GpuContext,
    name: &str,
    source: &str,
    entry: &str,
    layouts: &[&wgpu::BindGroupLayout],
    constants: &[(&str, f64)],
) -> Result<wgpu::ComputePipeline> {
    ctx.compute_pipeline(&PipelineDesc {
        label: &format!("{name}.{entry}"),
        family: name,
        source,
        key: ModuleKey::Text,
        entry,
        constants,
        layouts,
        trusted: false,
    })
}

/// Whether `wgsl` is one of the built-in tasks' WGSL functions, which the runtime-check policy
/// vouches for.
pub fn is_builtin_task(wgsl: &str) -> bool {
    ENV_SOURCES.iter().any(|(_, text)| *text == wgsl)
}

/// The runtime-check policy, in one place (the safety argument is on [`ShaderChecks`]): a
/// declared family is compiled without bounds checks and loop bounding unless the context asks
/// for [`ShaderChecks::Full`], or its task slot holds WGSL that is not a built-in task's (a
/// custom task keeps every check).
pub fn runtime_checks_off(ctx: &GpuContext, task: Option<&str>) -> bool {
    ctx.shader_checks() == ShaderChecks::Policy && task.is_none_or(is_builtin_task)
}

/// One module to validate: a family, with a built-in task's WGSL where it has a slot.
#[derive(Debug, Clone)]
pub struct ShaderSource {
    /// The family.
    pub family: Family,
    /// Module name (`"rollout/cartpole"`).
    pub name: String,
    /// The full WGSL text.
    pub source: String,
}

impl ShaderSource {
    /// The family's declaration.
    pub fn decl(&self) -> &'static FamilyDecl {
        self.family.decl()
    }
}

/// Every module the crate builds, each family with each built-in task where it has a task slot:
/// the table that the naga validation and translation tests walk (those that require more than
/// the portable kernels, [`Requires`], are validated with the capabilities they need).
pub fn shaders() -> Vec<ShaderSource> {
    let mut out = Vec::new();
    for &family in Family::ALL {
        let decl = family.decl();
        if decl.has_task_slot() {
            for (task, wgsl) in ENV_SOURCES {
                out.push(ShaderSource {
                    family,
                    name: format!("{}/{task}", decl.name),
                    source: decl.source(Some(wgsl)),
                });
            }
        } else {
            out.push(ShaderSource { family, name: decl.name.to_string(), source: decl.source(None) });
        }
    }
    out
}
