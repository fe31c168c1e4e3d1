//! Ensemble parameters: safetensors round trip, documented names, corrupt files.

use lookahead::error::FormatError;
use lookahead::model::{Ensemble, EnsembleSpec};
use lookahead::Error;

fn spec() -> EnsembleSpec {
    EnsembleSpec {
        n_members: 3,
        obs_dim: 4,
        act_dim: 1,
        hidden: vec![16, 9],
        probabilistic: true,
        learned_reward: false,
    }
}

#[test]
fn safetensors_round_trip_is_exact() {
    let dir = std::env::temp_dir().join(format!("lookahead-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ens.safetensors");
    let mut e = Ensemble::random(spec(), 3).unwrap();
    e.input_mean = vec![0.1, 0.2, 0.3, 0.4, 0.5];
    e.input_std = vec![1.0, 2.0, 3.0, 4.0, 5.0];
    e.save(&path).unwrap();
    let back = Ensemble::load(&path).unwrap();
    assert_eq!(back, e);
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names = st.names();
    names.sort();
    assert_eq!(
        names,
        [
            "input_mean",
            "input_std",
            "layers.0.bias",
            "layers.0.weight",
            "layers.1.bias",
            "layers.1.weight",
            "layers.2.bias",
            "layers.2.weight",
            "max_logvar",
            "min_logvar"
        ]
    );
    assert_eq!(st.tensor("layers.0.weight").unwrap().shape(), &[3, 5, 16]);
    assert_eq!(st.tensor("layers.2.weight").unwrap().shape(), &[3, 9, 8]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn truncated_altered_or_mismatched_files_are_rejected_with_the_reason() {
    let e = Ensemble::random(spec(), 3).unwrap();
    let dir = std::env::temp_dir().join(format!("lookahead-corrupt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ens.safetensors");
    e.save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    // Truncated.
    let err = Ensemble::from_bytes(&bytes[..bytes.len() - 10]).unwrap_err();
    assert!(matches!(err, FormatError::NotSafetensors(_)), "{err}");
    // A NaN written into the last weights.
    let mut nan = bytes.clone();
    let n = nan.len();
    nan[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    let err = Ensemble::from_bytes(&nan).unwrap_err();
    assert!(matches!(err, FormatError::Inconsistent(_)) && err.to_string().contains("finite"), "{err}");
    // One weight's bits changed: still a finite, plausible value, caught by the checksum.
    let mut flipped = bytes.clone();
    flipped[n - 7] ^= 0x01;
    let err = Ensemble::from_bytes(&flipped).unwrap_err();
    assert!(matches!(err, FormatError::Checksum { .. }), "{err}");
    // A file exported elsewhere carries no checksum and is read.
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = header.metadata().clone().unwrap();
    assert!(meta.remove("sha256").is_some(), "saved files carry their checksum");
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> =
        st.names().into_iter().map(|n| (n.to_string(), st.tensor(n).unwrap())).collect();
    let exported = safetensors::serialize(views, Some(meta)).unwrap();
    assert_eq!(Ensemble::from_bytes(&exported).unwrap(), e);
    // Garbage.
    assert!(matches!(Ensemble::from_bytes(b"not a model"), Err(FormatError::NotSafetensors(_))));
    // A missing file names the path.
    let err = Ensemble::load(dir.join("missing.safetensors")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }) && err.to_string().contains("missing.safetensors"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn invalid_parameters_are_rejected() {
    let mut e = Ensemble::random(spec(), 3).unwrap();
    e.input_std[2] = 0.0;
    assert!(e.validate().unwrap_err().to_string().contains("input_std"));
    let mut e = Ensemble::random(spec(), 3).unwrap();
    e.layers[1].weight.pop();
    assert!(e.validate().unwrap_err().to_string().contains("layer 1"));
    let bad = EnsembleSpec { n_members: 0, obs_dim: 0, ..spec() };
    let err = Ensemble::random(bad, 0).unwrap_err();
    assert!(matches!(err, Error::InvalidConfigs(ref v) if v.len() == 2), "{err}");
}

/// A network of thousands of layers, or of more parameters than a device binds (every layer
/// within the per-layer size), is refused by `validate` before anything is allocated: 100 000
/// width-1 layers were built for 15 s and 12.8 GB, 20 layers of 14 000 aborted the Python
/// interpreter. Counts past 2^64 are refused, not wrapped.
#[test]
fn depth_and_total_parameters_are_refused_before_anything_is_allocated() {
    use lookahead::model::{MAX_HIDDEN_LAYERS, MAX_PARAMS};
    let t0 = std::time::Instant::now();
    let deep = EnsembleSpec { hidden: vec![1; 100_000], ..spec() };
    let e = Ensemble::random(deep, 0).unwrap_err().to_string();
    assert!(e.contains("model.hidden: 100000 hidden layers, more than 64"), "{e}");
    EnsembleSpec { hidden: vec![1; MAX_HIDDEN_LAYERS], ..spec() }.validate().unwrap();
    let wide = EnsembleSpec { n_members: 5, hidden: vec![14_000; 20], ..spec() };
    assert!(wide.weight_counts().unwrap().iter().all(|n| *n < MAX_PARAMS));
    // (`validate` itself: 74 GB would be allocated if it let this through.)
    let e = wide.validate().unwrap_err().to_string();
    assert!(e.contains("have 18622310040 parameters") && e.contains("model.members"), "{e}");
    // 2^30 parameters exactly pass: 1 member, obs 4 + act 1, one hidden layer of w, 8 outputs
    // has 5w + w + 8w + 8 = 14w + 8.
    let at = |w: usize| EnsembleSpec { n_members: 1, hidden: vec![w], ..spec() };
    let w = ((MAX_PARAMS - 8) / 14) as usize;
    assert_eq!(at(w).param_count(), Some(14 * w as u64 + 8));
    assert!(at(w).validate().is_ok() && at(w + 1).validate().is_err());
    let huge = EnsembleSpec { n_members: usize::MAX, hidden: vec![usize::MAX / 2], ..spec() };
    assert!(huge.validate().unwrap_err().to_string().contains("over 2^64 parameters"));
    assert!(t0.elapsed() < std::time::Duration::from_secs(2), "took {:?}", t0.elapsed());
}

/// A version-1 checkpoint's checksum covers only its tensors, so its manifest (elites, configs,
/// Adam steps, generator) could be edited unnoticed: an elites list `[2, 3, 3]` loaded. It is
/// refused as a training checkpoint, saying how to carry it over; its weights still load as a
/// model. Elites that repeat a member, or name none, are refused whatever the version.
#[test]
fn version_one_checkpoints_are_refused_for_training_and_their_weights_still_load() {
    use lookahead::model::format::{checkpoint_digest, ensemble_tensors, metadata, serialize, Tensors};
    use lookahead::train::checkpoint::{Checkpoint, Manifest, CHECKPOINT_FORMAT};
    use lookahead::train::TrainConfig;
    let e = Ensemble::random(EnsembleSpec { n_members: 5, ..spec() }, 3).unwrap();
    let tensors: Tensors = ensemble_tensors(&e).into_iter().map(|(n, s, d)| (n, (s, d))).collect();
    // A checkpoint as each version writes it: version 1's checksum over the tensors only.
    let file = |version: u32, elites: Vec<usize>| -> Vec<u8> {
        let train = TrainConfig { num_elites: elites.len(), ..TrainConfig::default() };
        let m = Manifest { version, model: e.spec.clone(), train, elites, adam_steps: 0, rng: None, sha256: "".into() };
        let value = serde_json::to_value(&m).unwrap();
        let sha256 = checkpoint_digest(&tensors, (version >= 2).then_some(&value));
        let mut meta = metadata(&e.spec, CHECKPOINT_FORMAT);
        meta.insert("manifest".into(), serde_json::to_string(&Manifest { sha256, ..m }).unwrap());
        serialize(&tensors, meta).unwrap()
    };
    let v1 = file(1, vec![2, 3, 3]);
    let err = Checkpoint::from_bytes(&v1).unwrap_err();
    assert!(matches!(err, FormatError::UncheckedManifest { found: 1 }), "{err}");
    assert!(err.to_string().contains("Ensemble::load") && err.to_string().contains("new trainer"), "{err}");
    let path = std::env::temp_dir().join(format!("lookahead-v1-{}.safetensors", std::process::id()));
    std::fs::write(&path, &v1).unwrap();
    assert_eq!(Ensemble::load(&path).unwrap(), e, "a version-1 file's weights load as a model");
    std::fs::remove_file(&path).ok();
    assert_eq!(Checkpoint::from_bytes(&file(2, vec![2, 3, 0])).unwrap().elites, vec![2, 3, 0]);
    let err = Checkpoint::from_bytes(&file(2, vec![2, 3, 3])).unwrap_err().to_string();
    assert!(err.contains("elite 3 is listed twice"), "{err}");
    let err = Checkpoint::from_bytes(&file(2, vec![2, 5])).unwrap_err().to_string();
    assert!(err.contains("elite 5 is not a member of a 5-member ensemble"), "{err}");
    let err = Checkpoint::from_bytes(&file(2, vec![])).unwrap_err().to_string();
    assert!(err.contains("no elites"), "{err}");
}

/// Trained log-variance bounds can cross (a PETS demo run on cartpole ended with min −14.55 above
/// max −15.00 and the next `set_ensemble` refused the model, stopping the run): such a model
/// validates, saves, loads and predicts finite, clamped log-variances just above `min`.
#[test]
fn crossed_learned_logvar_bounds_are_accepted_and_stay_finite() {
    let mut e = Ensemble::random(spec(), 1).unwrap();
    e.max_logvar.iter_mut().for_each(|v| *v = -14.999725);
    e.min_logvar.iter_mut().for_each(|v| *v = -14.549_314);
    e.validate().expect("crossed but finite bounds are a valid model");
    let x = vec![0.1; e.spec.in_dim()];
    let p = e.predict_f64(0, &x);
    assert!(
        p.logvar.iter().all(|lv| lv.is_finite() && *lv >= -14.549_314 && *lv < -14.549_314 + 0.7),
        "{:?}",
        p.logvar
    );
    let path = std::env::temp_dir().join(format!("lookahead-crossed-{}.safetensors", std::process::id()));
    e.save(&path).unwrap();
    assert_eq!(Ensemble::load(&path).unwrap(), e);
    std::fs::remove_file(&path).ok();
    e.min_logvar[0] = f32::NAN;
    assert!(e.validate().unwrap_err().to_string().contains("must be finite"));
}

/// `Ensemble::load` verifies a training checkpoint's checksum before trusting its ensemble
/// (it used to read the tensors and skip the check).
#[test]
fn loading_an_ensemble_from_an_altered_checkpoint_is_refused() {
    use lookahead::train::checkpoint::Checkpoint;
    use lookahead::train::TrainConfig;
    let ckpt = Checkpoint {
        ensemble: Ensemble::random(spec(), 2).unwrap(),
        train: TrainConfig { num_elites: 2, ..TrainConfig::default() },
        elites: vec![0, 1],
        adam: None,
        rng: None,
    };
    let path = std::env::temp_dir().join(format!("lookahead-ckpt-ens-{}.safetensors", std::process::id()));
    ckpt.save(&path).unwrap();
    assert_eq!(Ensemble::load(&path).unwrap(), ckpt.ensemble, "an intact checkpoint loads");
    let mut bytes = std::fs::read(&path).unwrap();
    let k = bytes.len() - 8;
    bytes[k] ^= 0x10;
    let err = Ensemble::from_bytes_any(&bytes).unwrap_err();
    assert!(matches!(err, FormatError::Checksum { .. }), "{err}");
    std::fs::remove_file(&path).ok();
}

#[test]
fn selecting_a_member_twice_is_refused() {
    let e = Ensemble::random(
        EnsembleSpec {
            n_members: 3,
            obs_dim: 2,
            act_dim: 1,
            hidden: vec![4],
            probabilistic: true,
            learned_reward: false,
        },
        1,
    )
    .unwrap();
    let err = e.select_members(&[0, 0]).unwrap_err().to_string();
    assert!(err.contains("member 0 is selected twice"), "{err}");
    assert_eq!(e.select_members(&[2, 0]).unwrap().spec.n_members, 2);
}
