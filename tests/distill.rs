//! Distilling a PETS run's planner into a policy: the folder's resume, DAgger's bookkeeping of
//! the labels (the states the policy visits, labelled by the planner, added to the earlier
//! ones), and the refusals.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use lookahead::distill::{self, DistillConfig, RunOptions};
use lookahead::env::EnvKind;
use lookahead::pets::{self, PetsConfig, Preset};

/// A fresh folder of this test process under the system's temporary directory.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lookahead-distill-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A PETS cartpole run of this process (made once): the demo preset with a smaller planner,
/// `trials` trials of `length` steps.
fn pets_run(name: &str, trials: usize, length: usize) -> PathBuf {
    let sets: Vec<String> = [
        format!("loop.trials={trials}"),
        format!("loop.trial_length={length}"),
        "planner.population=50".into(),
        "planner.particles=4".into(),
    ]
    .into();
    let cfg = PetsConfig::resolve(EnvKind::Cartpole, Preset::Demo, None, &sets).unwrap();
    let dir = scratch(name);
    let mut env = cfg.env.make();
    let opts = pets::RunOptions { out_dir: Some(dir.clone()), ..Default::default() };
    pets::run(&common::ctx(), &cfg, env.as_mut(), cfg.env.task(), opts).unwrap();
    dir
}

fn config(sets: &[&str]) -> DistillConfig {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    DistillConfig::resolve(None, &sets).unwrap()
}

/// The short source of the folder tests (30-step episodes), shared by the tests of this process.
fn short_source() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| pets_run("short", 1, 30))
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

/// The rows of a point's dataset: (observation, label) pairs.
fn dataset(path: &Path) -> Vec<(Vec<f32>, Vec<f32>)> {
    let (d, a) = (4, 1);
    let ring = lookahead::sac::resume::load_ring(path, 2 * d + a + 2).unwrap();
    ring.chunks(2 * d + a + 2).map(|r| (r[..d].to_vec(), r[d..d + a].to_vec())).collect()
}

/// A distillation stopped in its second iteration and resumed ends exactly as an uninterrupted
/// one (the same rows, bit-identical policy and Adam state; catches a point that forgets the
/// dataset, the update count of the draws, the planner's stream or Adam), and its second
/// iteration's bookkeeping is DAgger's: the labels of the first are kept, then come exactly the
/// states the first iteration's policy visits from the iteration's reset seed, each labelled
/// with the planner's action there (replanned along the same states from the point's planner
/// stream). Catches labels of the wrong states (the planner's own, or shifted by a step),
/// labels that are not the planner's, and aggregation that drops the earlier labels.
#[test]
fn a_stopped_distillation_resumes_exactly_and_labels_the_states_its_policy_visits() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let ctx = common::ctx();
    let cfg = config(&[
        "dagger.iterations=1",
        "dagger.episodes=1",
        "dagger.eval_episodes=2",
        "train.updates_per_iteration=200",
    ]);
    let (straight, stopped, aside) = (scratch("straight"), scratch("stopped"), scratch("aside"));
    let whole =
        distill::run(&ctx, &cfg, short_source(), RunOptions { out_dir: Some(straight.clone()), ..Default::default() })
            .unwrap();
    assert_eq!(whole.iterations.len(), 2);
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    let mut stop_in_iteration_1 = |p: &distill::Progress| {
        if p.iteration == 1 && p.phase == "train" {
            f.store(true, Ordering::SeqCst);
        }
    };
    let opts = RunOptions {
        out_dir: Some(stopped.clone()),
        interrupt: Some(flag),
        progress: Some(&mut stop_in_iteration_1),
        ..Default::default()
    };
    let cut = distill::run(&ctx, &cfg, short_source(), opts).unwrap();
    assert!(cut.interrupted && cut.iterations.len() == 1, "{cut:?}");
    std::fs::create_dir_all(&aside).unwrap();
    for name in ["dataset.1.safetensors", "state.1.safetensors", "resume.json"] {
        std::fs::copy(stopped.join(name), aside.join(name)).unwrap();
    }
    let resumed = distill::run(
        &ctx,
        &cfg,
        short_source(),
        RunOptions { out_dir: Some(stopped.clone()), resume: true, ..Default::default() },
    )
    .unwrap();
    assert!(!resumed.interrupted && resumed.iterations.len() == 2);
    let rows = |d: &Path| -> Vec<String> {
        read(d, "results.csv").lines().map(|l| l.rsplit_once(',').unwrap().0.to_string()).collect()
    };
    assert_eq!(rows(&stopped), rows(&straight));
    let policy = |d: &Path| lookahead::sac::SacCheckpoint::load(&d.join("policy.safetensors")).unwrap().tensors;
    assert!(policy(&stopped) == policy(&straight), "the resumed policy or Adam state differs");
    // The second iteration's labels.
    let first = dataset(&aside.join("dataset.1.safetensors"));
    let all = dataset(&straight.join("dataset.2.safetensors"));
    assert_eq!(&all[..first.len()], &first[..], "the first iteration's labels were not kept");
    let policy_0 = lookahead::sac::Policy::load(&aside.join("state.1.safetensors")).unwrap();
    let point: serde_json::Value = serde_json::from_str(&read(&aside, "resume.json")).unwrap();
    let pets_cfg: PetsConfig = lookahead::run::read_config(short_source()).unwrap();
    let task = pets_cfg.env.task();
    let model = pets::load_elites(short_source(), &pets_cfg, &task).unwrap();
    let planner_cfg = lookahead::planner::PlannerConfig { seed: cfg.seed, ..pets_cfg.planner.clone() };
    let mut planner =
        lookahead::planner::Planner::new(&ctx, task, lookahead::planner::Dynamics::Ensemble(model), planner_cfg)
            .unwrap();
    planner.set_calls(point["planner_calls"].as_u64().unwrap() as u32);
    planner.reset().unwrap();
    let mut env = EnvKind::Cartpole.make();
    let mut obs = env.reset(distill::episode_seed(cfg.seed, 1, 0));
    let mut expected = Vec::new();
    for _ in 0..pets_cfg.schedule.trial_length {
        let o: Vec<f32> = obs.iter().map(|v| *v as f32).collect();
        let label = planner.plan_batch(std::slice::from_ref(&o)).unwrap().remove(0).action;
        expected.push((o, label));
        let s = env.step(&policy_0.act(&obs).unwrap()).unwrap();
        obs = s.obs;
        if s.terminated || s.truncated {
            break;
        }
    }
    assert_eq!(&all[first.len()..], &expected[..], "the second iteration's states or labels");
}

/// The known-model source (`run_mpc`, `lookahead distill --mpc`): the cartpole's planner over
/// its true dynamics keeps the pole up on every evaluation start state, and one iteration of
/// its labels gives a policy that keeps it up for most of an episode (a random policy: about
/// 20 steps). Catches the planner of the wrong dynamics or task, and labels that do not reach
/// the training.
#[test]
fn a_known_models_planner_is_distilled_too() {
    let ctx = common::ctx();
    let cfg = config(&["dagger.iterations=0", "dagger.episodes=2", "dagger.eval_episodes=3"]);
    let planner = lookahead::planner::PlannerConfig::pets_reference();
    let s = distill::run_mpc(&ctx, &cfg, EnvKind::Cartpole, planner, RunOptions::default()).unwrap();
    assert!(s.planner_returns.iter().all(|r| *r >= 199.0), "{:?}", s.planner_returns);
    let r = &s.iterations[0];
    assert!(r.labels == 400 && r.policy_return > 100.0, "{r:?}");
}

/// Bad input is refused before any work, every problem at once where there are several: a
/// folder that holds no PETS run (a SAC run's, an empty one), keys of every section, resuming
/// without a folder or from a folder without a distillation.
#[test]
fn bad_input_is_refused_before_any_work() {
    let sets: Vec<String> =
        ["train.lr=0", "dagger.episodes=0", "policy.width=3"].iter().map(|s| s.to_string()).collect();
    let e = DistillConfig::resolve(None, &sets).unwrap_err().to_string();
    for key in ["train.lr", "dagger.episodes", "policy.width"] {
        assert!(e.contains(key), "{key} missing from {e}");
    }
    let ctx = common::ctx();
    let cfg = DistillConfig::default();
    let empty = scratch("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = distill::run(&ctx, &cfg, &empty, RunOptions::default()).unwrap_err().to_string();
    assert!(e.contains("holds no PETS run"), "{e}");
    let sac_dir = scratch("sac");
    std::fs::create_dir_all(&sac_dir).unwrap();
    std::fs::write(sac_dir.join("run.json"), r#"{"kind":"sac","id":"0"}"#).unwrap();
    let e = distill::run(&ctx, &cfg, &sac_dir, RunOptions::default()).unwrap_err().to_string();
    assert!(e.contains("holds a sac run"), "{e}");
    let opts = RunOptions { resume: true, ..Default::default() };
    let e = distill::run(&ctx, &cfg, short_source(), opts).unwrap_err().to_string();
    assert!(e.contains("resuming needs the run folder"), "{e}");
    let opts = RunOptions { out_dir: Some(scratch("nothing")), resume: true, ..Default::default() };
    let e = distill::run(&ctx, &cfg, short_source(), opts).unwrap_err().to_string();
    assert!(e.contains("nothing to resume"), "{e}");
}
