//! Property tests of the input layers (no GPU): random config documents and `--set` strings never
//! panic and every refusal names a key; random truncations and byte flips of a checkpoint never
//! panic and never load as anything but the saved checkpoint.

use lookahead::env::EnvKind;
use lookahead::model::{Ensemble, EnsembleSpec};
use lookahead::pets::{PetsConfig, Preset};
use lookahead::planner::PlannerConfig;
use lookahead::train::checkpoint::Checkpoint;
use lookahead::train::TrainConfig;
use proptest::prelude::*;

/// Keys a user might type (real ones, misspelt ones, other sections' ones).
const KEYS: &[&str] = &[
    "planner.horizon",
    "planner.population",
    "planner.kind",
    "planner.sigma",
    "planner.alpha",
    "planner.elite_ratio",
    "planner.action_lower",
    "planner.propagation",
    "train.lr",
    "train.epochs",
    "train.batch_size",
    "train.num_elites",
    "model.hidden",
    "model.members",
    "loop.trials",
    "loop.trial_length",
    "seed",
    "env",
    "planner.horizn",
    "model",
    "train",
    "nope",
    "planner..horizon",
    ".x",
    "loop.trials.deep",
];
const VALUES: &[&str] = &[
    "0",
    "1",
    "-1",
    "350",
    "99999999999999999999",
    "1e400",
    "nan",
    "inf",
    "-inf",
    "0.5",
    "\"icem\"",
    "mppi",
    "[]",
    "[8]",
    "[0]",
    "[100000, 100000]",
    "[-1.0]",
    "true",
    "{ a = 1 }",
    "\"",
    "",
    "=",
    "[1, \"a\"]",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 10000, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn set_assignments_never_panic_and_refusals_name_a_key(
        picks in proptest::collection::vec((0..KEYS.len(), 0..VALUES.len()), 1..4),
        garbage in "[ -~]{0,12}",
    ) {
        let mut sets: Vec<String> = picks.iter().map(|(k, v)| format!("{}={}", KEYS[*k], VALUES[*v])).collect();
        sets.push(garbage);
        if let Err(e) = PetsConfig::resolve(EnvKind::Cartpole, Preset::Demo, None, &sets) {
            let text = e.to_string();
            prop_assert!(text.starts_with("invalid config"), "not a config error: {text}");
        }
        let mut p = PlannerConfig::default();
        for s in &sets {
            if let Err(e) = p.set(s) {
                prop_assert!(e.to_string().contains("invalid config"), "{e}");
            }
        }
    }

    #[test]
    fn config_documents_never_panic(doc in "[a-z_.=\\[\\]\"0-9 \\n-]{0,120}") {
        let _ = PetsConfig::resolve(EnvKind::Pendulum, Preset::Reference, Some(&doc), &[]);
        let _ = PlannerConfig::from_toml(&doc);
    }
}

fn saved_checkpoint() -> (Vec<u8>, Checkpoint) {
    let spec = EnsembleSpec {
        n_members: 2,
        obs_dim: 3,
        act_dim: 1,
        hidden: vec![5],
        probabilistic: true,
        learned_reward: false,
    };
    let ckpt = Checkpoint {
        ensemble: Ensemble::random(spec, 9).unwrap(),
        train: TrainConfig { num_elites: 2, ..TrainConfig::default() },
        elites: vec![1, 0],
        adam: None,
        rng: None,
    };
    let path = std::env::temp_dir().join(format!("lookahead-fuzz-{}.safetensors", std::process::id()));
    ckpt.save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).ok();
    (bytes, ckpt)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10000, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn damaged_checkpoints_are_refused_never_loaded_wrong(flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..3), cut in any::<prop::sample::Index>(), truncate in any::<bool>()) {
        thread_local!(static SAVED: (Vec<u8>, Checkpoint) = saved_checkpoint());
        SAVED.with(|(bytes, original)| {
            let mut b = bytes.clone();
            for (at, x) in &flips {
                let i = at.index(b.len());
                b[i] ^= x;
            }
            if truncate {
                b.truncate(cut.index(b.len()));
            }
            match Checkpoint::from_bytes(&b) {
                // Only an undamaged file (or damage that cancels out) may load, and then exactly.
                Ok(loaded) => prop_assert_eq!(&loaded, original),
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
            Ok(())
        })?;
    }
}
