//! Property tests of the input layers: random config documents and `--set` strings never panic
//! and every refusal names a key; random truncations and byte flips of a checkpoint never panic
//! and never load as anything but the saved checkpoint; edits of a real run's `resume.json`
//! (written once per process by a tiny PETS run on the adapter under test) never panic, and a
//! state that still loads is one a run of its config could have written.

mod common;

use std::path::{Path, PathBuf};

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

/// The tiny run whose consistent point the edits start from: two trials of at most 6 steps.
fn resume_config() -> PetsConfig {
    let sets: Vec<String> = [
        "loop.trials=2",
        "loop.trial_length=6",
        "loop.initial_exploration_steps=10",
        "loop.freq_train_model=6",
        "model.hidden=[8]",
        "train.epochs=1",
        "planner.population=10",
        "planner.particles=1",
        "planner.horizon=3",
        "planner.iterations=1",
    ]
    .map(String::from)
    .to_vec();
    PetsConfig::resolve(EnvKind::Pendulum, Preset::Demo, None, &sets).unwrap()
}

/// The run folder, its `resume.json` as written, and a folder beside it holding copies of the
/// point's files (which a state naming `../…` or an absolute path would find, checksums and all).
struct RunFolder {
    dir: PathBuf,
    outside: PathBuf,
    state: serde_json::Value,
}

fn run_folder() -> &'static RunFolder {
    static FOLDER: std::sync::OnceLock<RunFolder> = std::sync::OnceLock::new();
    FOLDER.get_or_init(|| {
        let base = std::env::temp_dir().join(format!("lookahead-fuzz-resume-{}", std::process::id()));
        let (dir, outside) = (base.join("run"), base.join("outside"));
        std::fs::remove_dir_all(&base).ok();
        std::fs::create_dir_all(&outside).unwrap();
        let cfg = resume_config();
        let mut env = cfg.env.make();
        let opts = lookahead::pets::RunOptions { out_dir: Some(dir.clone()), ..Default::default() };
        lookahead::pets::run(&common::ctx(), &cfg, env.as_mut(), cfg.env.task(), opts).unwrap();
        let text = std::fs::read_to_string(dir.join("resume.json")).unwrap();
        let state: serde_json::Value = serde_json::from_str(&text).unwrap();
        for field in ["replay_file", "trainer_file"] {
            let name = state[field].as_str().unwrap();
            std::fs::copy(dir.join(name), outside.join(name)).unwrap();
            // An earlier point's name holding this point's bytes.
            std::fs::copy(dir.join(name), dir.join(name.replace(".2.", ".0."))).unwrap();
        }
        RunFolder { dir, outside, state }
    })
}

const FIELDS: &[&str] = &[
    "version",
    "trials_done",
    "env_steps",
    "planned_steps",
    "episode",
    "model_loss",
    "planner_calls",
    "trials",
    "replay_file",
    "trainer_file",
    "replay_sha256",
    "trainer_sha256",
];
const TRIAL_FIELDS: &[&str] = &["trial", "env_step", "return", "steps", "model_loss", "plan_ms", "step_ms"];

/// Values a field may be set to: numbers at the edges, of the wrong kind, and strings.
fn value(i: usize) -> serde_json::Value {
    use serde_json::json;
    [
        json!(0),
        json!(1),
        json!(2),
        json!(u32::MAX),
        json!(u64::MAX),
        json!(-1),
        json!(i64::MIN),
        json!(0.5),
        json!(1e300),
        json!("12"),
        json!(null),
        json!(true),
        json!([]),
        json!({}),
    ][i % 14]
        .clone()
}

/// Names a state may give a point's file: outside the folder (relative and absolute, where
/// copies with the same checksums wait), another point's or stem's file, run files, nothing.
fn file_name(f: &RunFolder, i: usize, field: &str) -> String {
    let name = f.state[field].as_str().unwrap().to_string();
    let other = if field == "replay_file" { "trainer_file" } else { "replay_file" };
    let outside = format!("../outside/{name}");
    [
        outside,
        f.outside.join(&name).display().to_string(),
        name.replace(".2.", ".0."),
        name.replace(".2.", ".1."),
        f.state[other].as_str().unwrap().to_string(),
        format!("./{name}"),
        format!("{name}/../{name}"),
        "resume.json".into(),
        "config.toml".into(),
        String::new(),
        ".".into(),
        "/dev/null".into(),
    ][i % 12]
        .clone()
}

/// One edit of the state, chosen by `(kind, a, b)`.
fn edit(f: &RunFolder, v: &mut serde_json::Value, (kind, a, b): (usize, usize, usize)) {
    let obj = v.as_object_mut().unwrap();
    let field = FIELDS[a % FIELDS.len()];
    let n_trials = obj.get("trials").and_then(|t| t.as_array()).map_or(0, |t| t.len());
    let trials = || f.state["trials"].as_array().unwrap().clone();
    match kind % 9 {
        0 => {
            obj.insert(field.into(), value(b));
        }
        1 => {
            obj.remove(field);
        }
        2 => {
            obj.insert(format!("extra_{}", b % 3), value(b));
        }
        3 if n_trials > 0 => {
            let t = &mut obj.get_mut("trials").unwrap().as_array_mut().unwrap()[a % n_trials];
            if let Some(t) = t.as_object_mut() {
                t.insert(TRIAL_FIELDS[b % TRIAL_FIELDS.len()].into(), value(a + b));
            }
        }
        4 => {
            // Lengthened: a copy of a trial appended, numbered next or as it was.
            let mut list = trials();
            let mut t = list[a % list.len()].clone();
            if b % 2 == 0 {
                t["trial"] = list.len().into();
            }
            list.push(t);
            obj.insert("trials".into(), list.into());
        }
        5 => {
            let mut list = trials();
            list.swap(0, 1);
            if b % 2 == 0 {
                for (i, t) in list.iter_mut().enumerate() {
                    t["trial"] = i.into();
                }
            }
            obj.insert("trials".into(), list.into());
        }
        6 | 7 => {
            let field = ["replay_file", "trainer_file"][a % 2];
            obj.insert(field.into(), file_name(f, b, field).into());
            if kind % 9 == 7 {
                // With the checksum of what the new name holds, where that is a file.
                let path = f.dir.join(obj[field].as_str().unwrap());
                if let Ok(sha) = lookahead::run::sha256_file(&path) {
                    obj.insert(field.replace("_file", "_sha256"), sha.into());
                }
            }
        }
        _ => {
            obj.insert(field.into(), f.state[FIELDS[b % FIELDS.len()]].clone());
        }
    }
}

/// What a state that loads and fits its plan must be: counters within the plan, the trials in
/// order and each within the trial length, the files plain names inside the folder whose
/// contents match the checksums.
fn assert_consistent(
    dir: &Path,
    cfg: &PetsConfig,
    s: &lookahead::pets::ResumeState,
) -> std::result::Result<(), TestCaseError> {
    let p = &cfg.schedule;
    prop_assert_eq!(s.version, 1);
    prop_assert!(s.trials_done <= p.trials && s.trials.len() == s.trials_done);
    prop_assert!(s.trials.iter().enumerate().all(|(i, t)| t.trial == i && (1..=p.trial_length).contains(&t.steps)));
    prop_assert_eq!(s.planned_steps, s.trials.iter().map(|t| t.steps).sum::<usize>());
    prop_assert_eq!(s.env_steps, p.initial_exploration_steps + s.planned_steps);
    prop_assert_eq!(s.planner_calls as usize, s.planned_steps);
    for (name, sha) in [(&s.replay_file, &s.replay_sha256), (&s.trainer_file, &s.trainer_sha256)] {
        let path = Path::new(name);
        prop_assert!(path.components().count() == 1 && path.file_name().is_some(), "not a plain name: {}", name);
        prop_assert_eq!(&lookahead::run::sha256_file(&dir.join(name)).unwrap(), sha);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn edited_resume_states_never_panic_and_load_only_when_consistent(
        edits in proptest::collection::vec((0usize..9, 0usize..64, 0usize..64), 1..4),
        duplicate in proptest::option::of(0usize..12),
    ) {
        let f = run_folder();
        let cfg = resume_config();
        let mut v = f.state.clone();
        for e in &edits {
            edit(f, &mut v, *e);
        }
        let mut text = serde_json::to_string_pretty(&v).unwrap();
        if let Some(k) = duplicate {
            // A key written twice, as a hand edit might leave it.
            text = text.replacen('{', &format!("{{\n  \"{}\": 1,", FIELDS[k]), 1);
        }
        std::fs::write(f.dir.join("resume.json"), &text).unwrap();
        let loaded = lookahead::pets::ResumeState::load(&f.dir);
        if let Ok(state) = loaded.and_then(|s| s.check_plan(&f.dir, &cfg).map(|()| s)) {
            assert_consistent(&f.dir, &cfg, &state)?;
        }
    }
}
