//! Every shader module the crate builds is parsed and validated by naga (no GPU needed), with
//! the overrides we set resolved, and the uniform structs match their Rust mirrors.

use naga::back::pipeline_constants::process_overrides;
use naga::valid::{Capabilities, ValidationFlags, Validator};

fn parse(name: &str, src: &str) -> naga::Module {
    naga::front::wgsl::parse_str(src).unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)))
}

#[test]
fn every_shader_parses_validates_and_resolves_its_overrides() {
    let table = lookahead::kernels::shaders();
    assert!(table.len() >= 5, "the shader table lists {} modules", table.len());
    for s in &table {
        let src = s.source();
        let module = parse(s.name, &src);
        let info = Validator::new(ValidationFlags::all(), Capabilities::default())
            .validate(&module)
            .unwrap_or_else(|e| panic!("{}: {}", s.name, e.emit_to_string(&src)));
        let mut constants = naga::back::PipelineConstants::default();
        if module.overrides.iter().any(|(_, o)| o.name.as_deref() == Some("WG_SIZE")) {
            constants.insert("WG_SIZE".to_string(), lookahead::kernels::WG_SIZE as f64);
        }
        let (resolved, _) = process_overrides(&module, &info, None, &constants)
            .unwrap_or_else(|e| panic!("{}: overrides: {e:?}", s.name));
        for ep in s.entry_points {
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
    let src = [lookahead::kernels::COMMON_WGSL, lookahead::kernels::CEM_WGSL].concat();
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
        ("_pad0", std::mem::offset_of!(PlanParams, _pad0)),
    ];
    assert_layout("cem", &src, "PlanParams", std::mem::size_of::<PlanParams>(), &expected);
}

#[test]
fn layer_params_layout_matches_the_rust_mirror() {
    use lookahead::kernels::mlp::LayerParams;
    let src = [lookahead::kernels::COMMON_WGSL, lookahead::kernels::MLP_WGSL].concat();
    let expected = [
        ("n_batch", std::mem::offset_of!(LayerParams, n_batch)),
        ("local_slots", std::mem::offset_of!(LayerParams, local_slots)),
        ("n_members", std::mem::offset_of!(LayerParams, n_members)),
        ("in_dim", std::mem::offset_of!(LayerParams, in_dim)),
        ("out_dim", std::mem::offset_of!(LayerParams, out_dim)),
        ("activation", std::mem::offset_of!(LayerParams, activation)),
        ("store_pre", std::mem::offset_of!(LayerParams, store_pre)),
        ("_pad0", std::mem::offset_of!(LayerParams, _pad0)),
    ];
    assert_layout("mlp", &src, "LayerParams", std::mem::size_of::<LayerParams>(), &expected);
}

#[test]
fn wgsl_size_constants_match_rust() {
    let c = lookahead::kernels::COMMON_WGSL;
    assert!(c.contains(&format!("const MAX_OBS: u32 = {}u;", lookahead::kernels::MAX_OBS)));
    assert!(c.contains(&format!("const MAX_ACT: u32 = {}u;", lookahead::kernels::MAX_ACT)));
    let m = lookahead::kernels::MLP_WGSL;
    assert!(m.contains(&format!("const TILE_M: u32 = {}u;", lookahead::kernels::mlp::TILE_M)));
    assert!(m.contains(&format!("const TILE_N: u32 = {}u;", lookahead::kernels::mlp::TILE_N)));
}

#[test]
fn train_params_layout_matches_the_rust_mirror() {
    use lookahead::kernels::TrainParams;
    let src = [lookahead::kernels::COMMON_WGSL, lookahead::kernels::LOSS_WGSL].concat();
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
    assert!(lookahead::kernels::ADAM_WGSL.contains(&format!("const CHUNK: u32 = {}u;", lookahead::train::NORM_CHUNK)));
}
