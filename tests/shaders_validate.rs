//! Every shader module the crate builds is parsed and validated by naga (no GPU needed), with
//! the overrides we set resolved, and translated to MSL and HLSL (so the Metal and DX12 paths
//! compile on every change); the uniform structs and every WGSL constant with a Rust twin match
//! it; every CPU reference a shader header names exists.

use naga::back::pipeline_constants::process_overrides;
use naga::valid::{Capabilities, ValidationFlags, Validator};

fn parse(name: &str, src: &str) -> naga::Module {
    naga::front::wgsl::parse_str(src).unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)))
}

use lookahead::kernels::{Family, Requires, ShaderSource};

/// The portable modules of the table (every family that runs on every adapter, with each
/// built-in task where it has a task slot).
fn portable() -> Vec<ShaderSource> {
    lookahead::kernels::shaders().into_iter().filter(|s| s.decl().requires == Requires::Portable).collect()
}

#[test]
fn the_table_holds_every_declared_family() {
    let table = lookahead::kernels::shaders();
    for family in Family::ALL {
        assert!(table.iter().any(|s| s.family == *family), "{family:?} is declared but not in the table");
    }
    // Every coop16 family is in it too (validated with its capabilities below).
    assert!(table.iter().any(|s| s.decl().requires == Requires::Coop16));
    assert!(table.len() >= 20, "the shader table lists {} modules", table.len());
}

#[test]
fn every_shader_parses_validates_and_resolves_its_overrides() {
    for s in &portable() {
        let (resolved, _) = resolved(s);
        for ep in s.decl().entry_points {
            assert!(resolved.entry_points.iter().any(|e| e.name == *ep), "{}: entry point {ep} is missing", s.name);
        }
    }
}

fn struct_layout(module: &naga::Module, name: &str) -> (u32, Vec<(String, u32)>) {
    for (_, ty) in module.types.iter() {
        if ty.name.as_deref() == Some(name) {
            if let naga::TypeInner::Struct { members, span } = &ty.inner {
                return (*span, members.iter().map(|m| (m.name.clone().unwrap_or_default(), m.offset)).collect());
            }
        }
    }
    panic!("struct {name} not found");
}

/// The WGSL struct `name` in `src` has the Rust mirror's size and member offsets, in order.
fn assert_layout(module_name: &str, src: &str, name: &str, size: usize, expected: &[(&str, usize)]) {
    let module = parse(module_name, src);
    let (span, members) = struct_layout(&module, name);
    assert_eq!(span as usize, size, "{name}: size");
    assert_eq!(members.len(), expected.len(), "{name}: member count");
    for ((member, off), (ename, eoff)) in members.iter().zip(expected) {
        assert_eq!((member.as_str(), *off as usize), (*ename, *eoff), "{name}");
    }
}

#[test]
fn plan_params_layout_matches_the_rust_mirror() {
    use lookahead::kernels::PlanParams;
    let src = Family::Cem.decl().source(None);
    let expected = [
        ("n_batch", std::mem::offset_of!(PlanParams, n_batch)),
        ("population", std::mem::offset_of!(PlanParams, population)),
        ("particles", std::mem::offset_of!(PlanParams, particles)),
        ("horizon", std::mem::offset_of!(PlanParams, horizon)),
        ("obs_dim", std::mem::offset_of!(PlanParams, obs_dim)),
        ("act_dim", std::mem::offset_of!(PlanParams, act_dim)),
        ("n_members", std::mem::offset_of!(PlanParams, n_members)),
        ("local_slots", std::mem::offset_of!(PlanParams, local_slots)),
        ("n_elites", std::mem::offset_of!(PlanParams, n_elites)),
        ("iteration", std::mem::offset_of!(PlanParams, iteration)),
        ("t", std::mem::offset_of!(PlanParams, t)),
        ("call", std::mem::offset_of!(PlanParams, call)),
        ("seed_lo", std::mem::offset_of!(PlanParams, seed_lo)),
        ("seed_hi", std::mem::offset_of!(PlanParams, seed_hi)),
        ("propagation", std::mem::offset_of!(PlanParams, propagation)),
        ("flags", std::mem::offset_of!(PlanParams, flags)),
        ("alpha", std::mem::offset_of!(PlanParams, alpha)),
        ("model_out", std::mem::offset_of!(PlanParams, model_out)),
        ("in_dim", std::mem::offset_of!(PlanParams, in_dim)),
        ("sampled", std::mem::offset_of!(PlanParams, sampled)),
        ("keep", std::mem::offset_of!(PlanParams, keep)),
        ("archive", std::mem::offset_of!(PlanParams, archive)),
        ("sigma", std::mem::offset_of!(PlanParams, sigma)),
        ("gamma", std::mem::offset_of!(PlanParams, gamma)),
        ("beta", std::mem::offset_of!(PlanParams, beta)),
        ("noise_beta", std::mem::offset_of!(PlanParams, noise_beta)),
        ("_pad0", std::mem::offset_of!(PlanParams, _pad0)),
    ];
    assert_layout("cem", &src, "PlanParams", std::mem::size_of::<PlanParams>(), &expected);
}

#[test]
fn layer_params_layout_matches_the_rust_mirror() {
    use lookahead::kernels::mlp::LayerParams;
    let src = Family::Mlp.decl().source(None);
    let expected = [
        ("n_batch", std::mem::offset_of!(LayerParams, n_batch)),
        ("local_slots", std::mem::offset_of!(LayerParams, local_slots)),
        ("n_members", std::mem::offset_of!(LayerParams, n_members)),
        ("in_dim", std::mem::offset_of!(LayerParams, in_dim)),
        ("out_dim", std::mem::offset_of!(LayerParams, out_dim)),
        ("activation", std::mem::offset_of!(LayerParams, activation)),
        ("store_pre", std::mem::offset_of!(LayerParams, store_pre)),
        ("bias_grad_off", std::mem::offset_of!(LayerParams, bias_grad_off)),
    ];
    assert_layout("mlp", &src, "LayerParams", std::mem::size_of::<LayerParams>(), &expected);
}

#[test]
fn train_params_layout_matches_the_rust_mirror() {
    use lookahead::kernels::TrainParams;
    let src = Family::Loss.decl().source(None);
    let expected = [
        ("n_members", std::mem::offset_of!(TrainParams, n_members)),
        ("batch", std::mem::offset_of!(TrainParams, batch)),
        ("valid_rows", std::mem::offset_of!(TrainParams, valid_rows)),
        ("in_dim", std::mem::offset_of!(TrainParams, in_dim)),
        ("model_out", std::mem::offset_of!(TrainParams, model_out)),
        ("probabilistic", std::mem::offset_of!(TrainParams, probabilistic)),
        ("learn_bounds", std::mem::offset_of!(TrainParams, learn_bounds)),
        ("step", std::mem::offset_of!(TrainParams, step)),
        ("n_steps", std::mem::offset_of!(TrainParams, n_steps)),
        ("bounds_offset", std::mem::offset_of!(TrainParams, bounds_offset)),
        ("min_offset", std::mem::offset_of!(TrainParams, min_offset)),
        ("n_params", std::mem::offset_of!(TrainParams, n_params)),
        ("n_chunks", std::mem::offset_of!(TrainParams, n_chunks)),
        ("lr", std::mem::offset_of!(TrainParams, lr)),
        ("beta1", std::mem::offset_of!(TrainParams, beta1)),
        ("beta2", std::mem::offset_of!(TrainParams, beta2)),
        ("eps", std::mem::offset_of!(TrainParams, eps)),
        ("weight_decay", std::mem::offset_of!(TrainParams, weight_decay)),
        ("clip_norm", std::mem::offset_of!(TrainParams, clip_norm)),
        ("logvar_penalty", std::mem::offset_of!(TrainParams, logvar_penalty)),
        ("objective", std::mem::offset_of!(TrainParams, objective)),
        ("_pad0", std::mem::offset_of!(TrainParams, _pad0)),
        ("_pad1", std::mem::offset_of!(TrainParams, _pad1)),
        ("_pad2", std::mem::offset_of!(TrainParams, _pad2)),
    ];
    assert_layout("loss", &src, "TrainParams", std::mem::size_of::<TrainParams>(), &expected);
}

#[test]
fn sac_params_layout_matches_the_rust_mirror() {
    use lookahead::kernels::sac::SacParams;
    let src = Family::Sac.decl().source(None);
    macro_rules! fields {
        ($($f:ident),*) => { [$((stringify!($f), std::mem::offset_of!(SacParams, $f))),*] };
    }
    let expected = fields!(
        batch,
        obs_dim,
        act_dim,
        n_stored,
        update_lo,
        update_hi,
        seed_lo,
        seed_hi,
        gamma,
        tau,
        target_entropy,
        learn_alpha,
        actor_step,
        slot,
        n_polyak,
        deterministic,
        step_lo,
        step_hi,
        n_real_rows,
        model_window,
        model_capacity,
        _pad0,
        _pad1,
        _pad2,
        center,
        half
    );
    assert_layout("sac", &src, "SacParams", std::mem::size_of::<SacParams>(), &expected);
}

#[test]
fn rollout_params_layout_matches_the_rust_mirror() {
    use lookahead::kernels::mbpo::RolloutParams;
    let src = Family::Mbpo.decl().source(Some(lookahead::kernels::ENV_CARTPOLE_WGSL));
    macro_rules! fields {
        ($($f:ident),*) => { [$((stringify!($f), std::mem::offset_of!(RolloutParams, $f))),*] };
    }
    let expected = fields!(
        n_rollouts, obs_dim, act_dim, model_out, out_cols, n_members, n_elites, flags, n_real, capacity, batch_lo,
        batch_hi, step, seed_lo, seed_hi, first, rows, _pad0, _pad1, _pad2, center, half
    );
    assert_layout("mbpo", &src, "RolloutParams", std::mem::size_of::<RolloutParams>(), &expected);
}

/// The resolved, validated module of a table entry, with `WG_SIZE` set where declared.
fn resolved(s: &ShaderSource) -> (naga::Module, naga::valid::ModuleInfo) {
    let src = &s.source;
    let module = parse(&s.name, src);
    let info = Validator::new(ValidationFlags::all(), Capabilities::default())
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}: {}", s.name, e.emit_to_string(src)));
    let mut constants = naga::back::PipelineConstants::default();
    for (name, value) in s.decl().fixed_overrides {
        constants.insert(name.to_string(), *value);
    }
    if module.overrides.iter().any(|(_, o)| o.name.as_deref() == Some("WG_SIZE")) {
        constants.insert("WG_SIZE".to_string(), lookahead::kernels::WG_SIZE as f64);
    }
    let (m, i) = process_overrides(&module, &info, None, &constants).unwrap_or_else(|e| panic!("{}: {e:?}", s.name));
    (m.into_owned(), i.into_owned())
}

#[test]
fn every_shader_translates_to_msl_and_hlsl() {
    for s in &portable() {
        let (module, info) = resolved(s);
        let msl_options = naga::back::msl::Options { lang_version: (2, 1), ..Default::default() };
        let (msl, _) = naga::back::msl::write_string(&module, &info, &msl_options, &Default::default())
            .unwrap_or_else(|e| panic!("{}: MSL: {e:?}", s.name));
        let hlsl_options =
            naga::back::hlsl::Options { shader_model: naga::back::hlsl::ShaderModel::V6_0, ..Default::default() };
        let pipeline_options = naga::back::hlsl::PipelineOptions::default();
        let mut hlsl = String::new();
        naga::back::hlsl::Writer::new(&mut hlsl, &hlsl_options, &pipeline_options)
            .write(&module, &info, None)
            .unwrap_or_else(|e| panic!("{}: HLSL: {e:?}", s.name));
        for ep in s.decl().entry_points {
            assert!(msl.contains(ep) && hlsl.contains(ep), "{}: entry point {ep} missing from a translation", s.name);
        }
    }
}

/// The value of the WGSL `const` (or the default of the `override`) `name` in `module`.
fn wgsl_constant(module: &naga::Module, name: &str) -> f64 {
    let init = module
        .constants
        .iter()
        .find(|(_, c)| c.name.as_deref() == Some(name))
        .map(|(_, c)| c.init)
        .or_else(|| module.overrides.iter().find(|(_, o)| o.name.as_deref() == Some(name)).and_then(|(_, o)| o.init))
        .unwrap_or_else(|| panic!("no constant {name}"));
    match module.global_expressions[init] {
        naga::Expression::Literal(naga::Literal::U32(v)) => v as f64,
        naga::Expression::Literal(naga::Literal::I32(v)) => v as f64,
        naga::Expression::Literal(naga::Literal::F32(v)) => v as f64,
        naga::Expression::Literal(naga::Literal::AbstractInt(v)) => v as f64,
        naga::Expression::Literal(naga::Literal::AbstractFloat(v)) => v,
        ref other => panic!("{name} is not a literal: {other:?}"),
    }
}

/// WGSL constants whose values the Rust side relies on, each compared with its Rust twin as
/// naga reads it (not by searching the text, so spacing, suffixes and expressions do not matter).
fn constant_mismatches(table: &[(&str, &str, f64)]) -> Vec<String> {
    let mut out = Vec::new();
    for (src, name, rust) in table {
        let module = parse(name, src);
        let wgsl = wgsl_constant(&module, name);
        if wgsl != *rust {
            out.push(format!("{name}: WGSL {wgsl} vs Rust {rust}"));
        }
    }
    out
}

#[test]
fn every_wgsl_constant_with_a_rust_twin_matches_it() {
    use lookahead::kernels::{self as k, adam, cem, mbpo, mlp, mlp_coop, mlp_fused, purpose, rng, sac};
    use lookahead::planner::Propagation;
    let common = k::COMMON_WGSL.to_string();
    let src = |family: Family| family.decl().source(None);
    let (mlp_src, rows_src, cem_src) = (src(Family::Mlp), src(Family::MlpRows), src(Family::Cem));
    let (adam_src, fused_src, coop_src) = (src(Family::Adam), src(Family::MlpFused), src(Family::MlpCoop));
    let sac_src = src(Family::Sac);
    let mbpo_src = Family::Mbpo.decl().source(Some(k::ENV_PENDULUM_WGSL));
    let table: Vec<(&str, &str, f64)> = vec![
        (&common, "WG_SIZE", k::WG_SIZE as f64),
        (&common, "MAX_OBS", k::MAX_OBS as f64),
        (&common, "MAX_ACT", k::MAX_ACT as f64),
        (&common, "PURPOSE_SAMPLE", purpose::SAMPLE as f64),
        (&common, "PURPOSE_NOISE", purpose::NOISE as f64),
        (&common, "PURPOSE_PERMUTE", purpose::PERMUTE as f64),
        (&common, "PURPOSE_ELITE", purpose::ELITE as f64),
        (&sac_src, "PURPOSE_SAC_INDEX", purpose::SAC_INDEX as f64),
        (&sac_src, "PURPOSE_SAC_NEXT", purpose::SAC_NEXT as f64),
        (&sac_src, "PURPOSE_SAC_CUR", purpose::SAC_CUR as f64),
        (&sac_src, "PURPOSE_SAC_ACT", purpose::SAC_ACT as f64),
        (&sac_src, "STATS", sac::STATS as f64),
        (&sac_src, "LOG_STD_MIN", sac::LOG_STD_MIN),
        (&sac_src, "LOG_STD_MAX", sac::LOG_STD_MAX),
        (&mbpo_src, "PURPOSE_MBPO_START", purpose::MBPO_START as f64),
        (&mbpo_src, "PURPOSE_MBPO_ACT", purpose::MBPO_ACT as f64),
        (&mbpo_src, "PURPOSE_MBPO_MEMBER", purpose::MBPO_MEMBER as f64),
        (&mbpo_src, "PURPOSE_MBPO_NOISE", purpose::MBPO_NOISE as f64),
        (&mbpo_src, "RANK_WG", mbpo::RANK_WORKGROUP as f64),
        (&common, "FLAG_UNIFORM", k::FLAG_UNIFORM as f64),
        (&common, "FLAG_EXTRAS_SHIFTED", k::FLAG_EXTRAS_SHIFTED as f64),
        (&common, "FLAG_EXTRAS_KEPT", k::FLAG_EXTRAS_KEPT as f64),
        (&common, "FLAG_EXTRAS_MEAN", k::FLAG_EXTRAS_MEAN as f64),
        (&common, "PROP_TS1", Propagation::Ts1.code() as f64),
        (&common, "PROP_TSINF", Propagation::Tsinf.code() as f64),
        (&common, "PROP_EXPECTATION", Propagation::Expectation.code() as f64),
        (&common, "FLAG_SAMPLE_NOISE", k::FLAG_SAMPLE_NOISE as f64),
        (&common, "FLAG_LEARNED_REWARD", k::FLAG_LEARNED_REWARD as f64),
        (&common, "FLAG_CLIPPED_NORMAL", k::FLAG_CLIPPED_NORMAL as f64),
        (&mlp_src, "TILE_M", mlp::TILE_M as f64),
        (&mlp_src, "TILE_N", mlp::TILE_N as f64),
        (&rows_src, "WINDOW", mlp::ROWS_WINDOW as f64),
        (&rows_src, "MAX_OUT4", mlp::ROWS_MAX_OUT4 as f64),
        (&fused_src, "FUSED_MAX_LAYERS", mlp_fused::FUSED_MAX_LAYERS as f64),
        (&fused_src, "FUSED_MAX_ACC", mlp_fused::FUSED_MAX_ACC as f64),
        (&fused_src, "FUSED_MAX_COLS", mlp_fused::FUSED_MAX_COLS as f64),
        (&cem_src, "MAX_TRUNCATION_ATTEMPTS", rng::MAX_TRUNCATION_ATTEMPTS as f64),
        (&cem_src, "NON_FINITE_RETURN", cem::NON_FINITE_RETURN as f64),
        (&adam_src, "CHUNK", adam::NORM_CHUNK as f64),
        (&adam_src, "RED_SIZE", adam::REDUCTION_WORKGROUP as f64),
        (&coop_src, "NS", mlp_coop::SUBGROUPS as f64),
    ];
    let bad = constant_mismatches(&table);
    assert!(bad.is_empty(), "WGSL and Rust disagree:\n{}", bad.join("\n"));
    // The comparison itself can fail: a changed constant is reported with both values.
    let altered = k::TILE_WGSL.replace("const TILE_M: u32 = 64u;", "const TILE_M: u32 = 32u;");
    let altered = [k::COMMON_WGSL, altered.as_str(), k::MLP_WGSL].concat();
    let bad = constant_mismatches(&[(&altered, "TILE_M", mlp::TILE_M as f64)]);
    assert_eq!(bad, ["TILE_M: WGSL 32 vs Rust 64"]);
}

/// Every name after "CPU reference:" in a shader header (paths such as
/// `kernels::cem::reference` and the function names listed after them) is defined in the crate:
/// `fn`, `mod`, `struct` or `enum` in the files of the path's first two segments.
#[test]
fn every_cpu_reference_named_in_a_shader_header_exists() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(root.join("shaders")).expect("shaders folder") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read shader");
        let Some(start) = text.find("CPU reference:") else {
            if !path.ends_with("common.wgsl") {
                missing.push(format!("{}: no \"CPU reference:\" line", path.display()));
            }
            continue;
        };
        // The reference text runs to the first line that is not a comment continuation.
        let mut refs = String::new();
        for (i, line) in text[start + "CPU reference:".len()..].lines().enumerate() {
            if i > 0 && !line.starts_with("//") {
                break;
            }
            refs.push_str(line.trim_start_matches('/'));
            refs.push(' ');
        }
        let mut current: Option<Vec<String>> = None;
        for token in refs.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')) {
            let token = token.trim_matches(':');
            if token.contains("::") {
                let segs: Vec<String> = token.split("::").map(str::to_string).collect();
                current = Some(segs.clone());
                for name in &segs[2.min(segs.len())..] {
                    checked += 1;
                    if !defined_under(root, &segs[..2.min(segs.len())], name) {
                        missing.push(format!("{}: {token}: {name}", path.display()));
                    }
                }
            } else if token.ends_with("_f64") {
                let segs = current.clone().unwrap_or_else(|| panic!("{}: {token} before any path", path.display()));
                checked += 1;
                if !defined_under(root, &segs[..2.min(segs.len())], token) {
                    missing.push(format!("{}: {token}", path.display()));
                }
            }
        }
    }
    assert!(checked >= 15, "only {checked} names were checked");
    assert!(missing.is_empty(), "CPU references named in shader headers that do not exist:\n{}", missing.join("\n"));
}

/// `name` is defined in `src/<a>/<b>.rs`, `src/<a>/<b>/*.rs` or `src/<a>/mod.rs`.
fn defined_under(root: &std::path::Path, segs: &[String], name: &str) -> bool {
    let base = root.join("src").join(&segs[0]);
    let mut files = vec![base.join("mod.rs")];
    if let Some(b) = segs.get(1) {
        files.push(base.join(format!("{b}.rs")));
        if let Ok(dir) = std::fs::read_dir(base.join(b)) {
            files.extend(dir.filter_map(|e| e.ok()).map(|e| e.path()));
        }
    }
    files.iter().filter_map(|f| std::fs::read_to_string(f).ok()).any(|text| {
        ["fn", "mod", "struct", "enum", "const"].iter().any(|kw| {
            text.contains(&format!("{kw} {name}("))
                || text.contains(&format!("{kw} {name} "))
                || text.contains(&format!("{kw} {name}<"))
                || text.contains(&format!("{kw} {name};"))
        })
    })
}

/// The coop16 families (cooperative matrices, f16) have no HLSL/GLSL path: they need naga's
/// COOPERATIVE_MATRIX, SHADER_FLOAT16 and SUBGROUP capabilities. Each module validates with
/// them (and not without any one), resolves its overrides for every shape its declaration lists,
/// and translates to SPIR-V; and `FusedParams` (common.wgsl, read by it and `mlp_fused.wgsl`)
/// matches its Rust mirror.
#[test]
fn the_cooperative_matrix_kernels_validate_with_their_capabilities_and_translate_to_spirv() {
    use lookahead::kernels::mlp_fused::FusedParams;
    let all = Capabilities::COOPERATIVE_MATRIX | Capabilities::SHADER_FLOAT16 | Capabilities::SUBGROUP;
    let modules: Vec<ShaderSource> =
        lookahead::kernels::shaders().into_iter().filter(|s| s.decl().requires == Requires::Coop16).collect();
    assert_eq!(modules.len(), 1 + lookahead::kernels::ENV_SOURCES.len(), "the network and a model step per task");
    for s in &modules {
        let (name, src) = (&s.name, &s.source);
        let module = parse(name, src);
        assert!(
            Validator::new(ValidationFlags::all(), Capabilities::default()).validate(&module).is_err(),
            "{name}: validated without the cooperative-matrix capability"
        );
        // Each of the three capabilities is needed (the device features of gpu::COOP16_FEATURES).
        for missing in [Capabilities::COOPERATIVE_MATRIX, Capabilities::SHADER_FLOAT16, Capabilities::SUBGROUP] {
            assert!(
                Validator::new(ValidationFlags::all(), all - missing).validate(&module).is_err(),
                "{name}: validated without {missing:?}"
            );
        }
        let info = Validator::new(ValidationFlags::all(), all)
            .validate(&module)
            .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
        let shapes = s.decl().validation_overrides;
        assert!(!shapes.is_empty(), "{name}: no shapes to resolve");
        for shape in shapes {
            let mut constants = naga::back::PipelineConstants::default();
            for (k, v) in shape.iter().chain(s.decl().fixed_overrides) {
                constants.insert(k.to_string(), *v);
            }
            let (m, i) = process_overrides(&module, &info, None, &constants).expect("overrides");
            let options = naga::back::spv::Options { lang_version: (1, 5), ..Default::default() };
            let words = naga::back::spv::write_vec(&m, &i, &options, None).expect("SPIR-V");
            assert!(words.len() > 100, "{name}");
        }
    }
    let src = Family::MlpCoop.decl().source(None);
    let expected = [
        ("n_batch", std::mem::offset_of!(FusedParams, n_batch)),
        ("local_slots", std::mem::offset_of!(FusedParams, local_slots)),
        ("n_members", std::mem::offset_of!(FusedParams, n_members)),
        ("n_layers", std::mem::offset_of!(FusedParams, n_layers)),
        ("dims", std::mem::offset_of!(FusedParams, dims)),
        ("w_off", std::mem::offset_of!(FusedParams, w_off)),
        ("b_off", std::mem::offset_of!(FusedParams, b_off)),
        ("y_off", std::mem::offset_of!(FusedParams, y_off)),
        ("store_hidden", std::mem::offset_of!(FusedParams, store_hidden)),
        ("in_off", std::mem::offset_of!(FusedParams, in_off)),
        ("transpose", std::mem::offset_of!(FusedParams, transpose)),
        ("pre_off", std::mem::offset_of!(FusedParams, pre_off)),
        ("act_off", std::mem::offset_of!(FusedParams, act_off)),
        ("t_off", std::mem::offset_of!(FusedParams, t_off)),
    ];
    assert_layout("mlp_coop", &src, "FusedParams", std::mem::size_of::<FusedParams>(), &expected);
}

#[test]
fn grads_params_layout_matches_the_rust_mirror() {
    use lookahead::kernels::mlp_grads::GradsParams;
    let src = Family::MlpGrads.decl().source(None);
    let expected = [
        ("n_batch", std::mem::offset_of!(GradsParams, n_batch)),
        ("local_slots", std::mem::offset_of!(GradsParams, local_slots)),
        ("n_members", std::mem::offset_of!(GradsParams, n_members)),
        ("n_layers", std::mem::offset_of!(GradsParams, n_layers)),
        ("dims", std::mem::offset_of!(GradsParams, dims)),
        ("x_off", std::mem::offset_of!(GradsParams, x_off)),
        ("d_off", std::mem::offset_of!(GradsParams, d_off)),
        ("w_off", std::mem::offset_of!(GradsParams, w_off)),
        ("b_off", std::mem::offset_of!(GradsParams, b_off)),
    ];
    assert_layout("mlp_grads", &src, "GradsParams", std::mem::size_of::<GradsParams>(), &expected);
}
