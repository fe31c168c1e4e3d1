//! The PETS loop: config resolution, a short run that must learn, the run directory, eval and
//! interruption.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use lookahead::env::EnvKind;
use lookahead::pets::{self, PetsConfig, Preset, RunOptions};
use lookahead::train::checkpoint::Checkpoint;

#[test]
fn config_resolution_applies_file_then_sets_and_names_unknown_keys() {
    let file = "seed = 7\n[planner]\npopulation = 123\n[train]\nclip_grad_norm = 5.0\n";
    let sets =
        vec!["planner.horizon=9".to_string(), "loop.trials=3".to_string(), "planner.propagation=tsinf".to_string()];
    let cfg = PetsConfig::resolve(EnvKind::Pendulum, Preset::Reference, Some(file), &sets).unwrap();
    assert_eq!((cfg.seed, cfg.planner.population, cfg.planner.horizon, cfg.schedule.trials), (7, 123, 9, 3));
    assert_eq!(cfg.train.clip_grad_norm, Some(5.0));
    assert_eq!(cfg.planner.propagation, lookahead::planner::Propagation::Tsinf);
    // The untouched rest is the pendulum reference preset.
    assert_eq!(cfg.model, PetsConfig::preset(EnvKind::Pendulum, Preset::Reference).model);
    // Round trip through the TOML a run directory stores.
    let back: PetsConfig = toml::from_str(&cfg.to_toml()).unwrap();
    assert_eq!(back, cfg);
    for (file, sets, key) in [
        (Some("[planner]\npopulaton = 3\n"), vec![], "planner.populaton"),
        (None, vec!["train.lr_typo=1".to_string()], "train.lr_typo"),
        (Some("[nonsense]\nx = 1\n"), vec![], "nonsense"),
        (None, vec!["model.hidden=5".to_string()], "hidden"),
    ] {
        let err = PetsConfig::resolve(EnvKind::Cartpole, Preset::Demo, file, &sets).unwrap_err().to_string();
        assert!(err.contains(key), "{key} not named in: {err}");
    }
}

/// Parsing TOML takes about a hundred times a document's size (a 50 MB array in a config file
/// took 5.8 GB): a config text or an assignment past 1 MiB is refused before it is parsed.
#[test]
fn config_texts_past_one_mebibyte_are_refused_before_parsing() {
    use lookahead::util::MAX_CONFIG_BYTES;
    let list = |n: usize| format!("[{}]", vec!["8"; n].join(", "));
    let huge = format!("[model]\nhidden = {}\n", list(MAX_CONFIG_BYTES / 3 + 1));
    assert!(huge.len() > MAX_CONFIG_BYTES);
    let t0 = std::time::Instant::now();
    let e = PetsConfig::resolve(EnvKind::Cartpole, Preset::Demo, Some(&huge), &[]).unwrap_err().to_string();
    assert!(e.contains("config file") && e.contains("at most 1048576 bytes (1 MiB)"), "{e}");
    let set = format!("model.hidden={}", list(MAX_CONFIG_BYTES / 3 + 1));
    let e = PetsConfig::resolve(EnvKind::Cartpole, Preset::Demo, None, &[set]).unwrap_err().to_string();
    assert!(e.contains("model.hidden (an assignment)") && e.contains("1 MiB"), "{e}");
    assert!(t0.elapsed() < std::time::Duration::from_secs(2), "refused after {:?}", t0.elapsed());
    // Just under the limit is parsed (and refused for what it says, not for its size).
    let big = format!("[model]\nhidden = {}\n", list(MAX_CONFIG_BYTES / 3 - 20));
    assert!(big.len() <= MAX_CONFIG_BYTES);
    let e = PetsConfig::resolve(EnvKind::Cartpole, Preset::Demo, Some(&big), &[]).unwrap_err().to_string();
    assert!(e.contains(&format!("model.hidden: {} hidden layers, more than 64", MAX_CONFIG_BYTES / 3 - 20)), "{e}");
    let path = std::env::temp_dir().join(format!("lookahead-huge-{}.toml", std::process::id()));
    std::fs::write(&path, &huge).unwrap();
    let e = lookahead::util::read_config_file(&path).unwrap_err().to_string();
    assert!(e.contains(&path.display().to_string()) && e.contains(&format!("{} bytes", huge.len())), "{e}");
    std::fs::remove_file(&path).ok();
}

#[test]
fn impossible_values_are_all_reported_before_any_work() {
    let sets: Vec<String> = ["planner.horizon=0", "train.lr=-1", "loop.initial_exploration_steps=0", "model.members=2"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let err = PetsConfig::resolve(EnvKind::Cartpole, Preset::Reference, None, &sets).unwrap_err().to_string();
    for key in ["planner.horizon", "train.lr", "loop.initial_exploration_steps", "train.num_elites"] {
        assert!(err.contains(key), "{key} missing from: {err}");
    }
}

gpu_test!(a_short_demo_run_learns_cartpole_and_leaves_a_complete_run_directory, |ctx| {
    // The demo preset, shortened: two trials of 100 steps. Random actions last about 20 steps.
    let sets = vec!["loop.trials=2".to_string(), "loop.trial_length=100".to_string()];
    let cfg = PetsConfig::resolve(EnvKind::Cartpole, Preset::Demo, None, &sets).unwrap();
    let dir = std::env::temp_dir().join(format!("lookahead-pets-{}", std::process::id()));
    let mut env = cfg.env.make();
    let summary = pets::run(
        ctx,
        &cfg,
        env.as_mut(),
        cfg.env.task(),
        RunOptions { out_dir: Some(dir.clone()), ..Default::default() },
    )
    .unwrap();
    let returns: Vec<f64> = summary.trials.iter().map(|t| t.total_return).collect();
    println!("trial returns {returns:?} in {:.1} s", summary.seconds);
    assert_eq!(returns.len(), 2);
    assert_eq!(
        returns.iter().copied().fold(0.0, f64::max),
        100.0,
        "the pole should stay up a whole trial: {returns:?}"
    );
    // The run directory.
    let stored: PetsConfig = toml::from_str(&std::fs::read_to_string(dir.join("config.toml")).unwrap()).unwrap();
    assert_eq!(stored, cfg);
    let events: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let planned: usize = summary.trials.iter().map(|t| t.steps).sum();
    assert_eq!(
        events.iter().filter(|e| e["event"] == "train").count(),
        planned.div_ceil(cfg.schedule.freq_train_model)
    );
    assert_eq!(events.iter().filter(|e| e["event"] == "trial").count(), 2);
    assert_eq!(events.last().unwrap()["event"], "end");
    let csv = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "env_step,trial,return,model_loss,plan_ms,step_ms");
    assert_eq!(lines.len(), 3);
    let ckpt = Checkpoint::load(dir.join("model.safetensors")).unwrap();
    assert_eq!(ckpt.elites.len(), cfg.train.num_elites);
    assert!(std::fs::read_to_string(dir.join("learning_curve.svg")).unwrap().contains("<svg"));
    // Replaying the checkpoint plans with the learned model, against doing nothing from the same
    // starts (eval resets episode ep with seed · 7919 + ep).
    let eval = pets::evaluate(ctx, &dir, 3, 3, Default::default()).unwrap().returns;
    assert_eq!(eval.len(), 3);
    let idle: Vec<f64> = (0..3u64)
        .map(|ep| {
            let mut e = EnvKind::Cartpole.make();
            e.reset(3 * 7919 + ep);
            let mut total = 0.0;
            for _ in 0..cfg.schedule.trial_length {
                let s = e.step(&[0.0]).unwrap();
                total += s.reward;
                if s.terminated || s.truncated {
                    break;
                }
            }
            total
        })
        .collect();
    let mean = eval.iter().sum::<f64>() / 3.0;
    let idle_mean = idle.iter().sum::<f64>() / 3.0;
    println!("replayed returns {eval:?}, doing nothing {idle:?}");
    assert!(mean >= 90.0 && mean >= idle_mean + 30.0, "replayed {eval:?} against doing nothing {idle:?}");
    std::fs::remove_dir_all(&dir).ok();
});

gpu_test!(an_interrupted_run_keeps_its_checkpoint_and_metrics_intact, |ctx| {
    let sets: Vec<String> = [
        "loop.trials=3",
        "loop.trial_length=40",
        "loop.initial_exploration_steps=60",
        "loop.freq_train_model=20",
        "model.hidden=[16]",
        "train.epochs=2",
        "planner.population=20",
        "planner.particles=2",
        "planner.horizon=5",
        "planner.iterations=1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let cfg = PetsConfig::resolve(EnvKind::Pendulum, Preset::Demo, None, &sets).unwrap();
    let dir = std::env::temp_dir().join(format!("lookahead-interrupt-{}", std::process::id()));
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let mut seen = 0;
    let mut progress = |p: &pets::Progress| {
        seen += 1;
        // Interrupt in the middle of the second trial.
        if p.trial == 1 && p.step == 10 {
            flag.store(true, Ordering::SeqCst);
        }
    };
    let mut env = cfg.env.make();
    let opts = RunOptions {
        out_dir: Some(dir.clone()),
        interrupt: Some(stop),
        progress: Some(&mut progress),
        overwrite: false,
        resume: false,
    };
    let summary = pets::run(ctx, &cfg, env.as_mut(), cfg.env.task(), opts).unwrap();
    assert!(summary.interrupted);
    assert_eq!(summary.trials.len(), 1, "only the finished trial is recorded");
    assert_eq!(seen, 50);
    let csv = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2);
    for line in std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap().lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("every metrics line is complete JSON");
    }
    Checkpoint::load(dir.join("model.safetensors")).expect("the checkpoint is intact");
    assert!(dir.join("learning_curve.svg").exists());
    std::fs::remove_dir_all(&dir).ok();
});

fn tiny(env: EnvKind, extra: &[&str]) -> PetsConfig {
    let mut sets: Vec<String> = [
        "loop.trials=1",
        "loop.trial_length=10",
        "loop.initial_exploration_steps=10",
        "loop.freq_train_model=10",
        "model.hidden=[8]",
        "train.epochs=1",
        "planner.population=10",
        "planner.particles=1",
        "planner.horizon=3",
        "planner.iterations=1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    sets.extend(extra.iter().map(|s| s.to_string()));
    PetsConfig::resolve(env, Preset::Demo, None, &sets).unwrap()
}

gpu_test!(a_run_directory_holding_a_run_is_refused_and_overwrite_replaces_every_file, |ctx| {
    let dir = std::env::temp_dir().join(format!("lookahead-rerun-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let cfg = tiny(EnvKind::Pendulum, &[]);
    let mut env = cfg.env.make();
    let run = |overwrite: bool, env: &mut dyn lookahead::env::Env, cfg: &PetsConfig| {
        pets::run(
            ctx,
            cfg,
            env,
            cfg.env.task(),
            RunOptions { out_dir: Some(dir.clone()), overwrite, ..Default::default() },
        )
    };
    run(false, env.as_mut(), &cfg).expect("a new folder");
    let before: Vec<Vec<u8>> = ["config.toml", "results.csv", "model.safetensors"]
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect();
    // The same command again: refused, the earlier run untouched.
    let other = tiny(EnvKind::Pendulum, &["model.hidden=[12]"]);
    let e = run(false, env.as_mut(), &other).unwrap_err().to_string();
    assert!(e.contains("--overwrite") && e.contains("already holds files"), "{e}");
    let after: Vec<Vec<u8>> = ["config.toml", "results.csv", "model.safetensors"]
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect();
    assert_eq!(before, after, "a refused run changed the earlier one");
    // With overwrite, the new run's config and model replace the old ones.
    run(true, env.as_mut(), &other).expect("overwrite");
    assert!(std::fs::read_to_string(dir.join("config.toml")).unwrap().contains("hidden = [12]"));
    let ckpt = Checkpoint::load(dir.join("model.safetensors")).unwrap();
    assert_eq!(ckpt.ensemble.spec.hidden, vec![12]);
    std::fs::remove_dir_all(&dir).ok();
});

gpu_test!(sizes_the_device_cannot_hold_are_refused_before_any_work_or_file, |ctx| {
    let dir = std::env::temp_dir().join(format!("lookahead-toolarge-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    // A run stores up to initial_exploration_steps + trials × trial_length transitions and
    // trains on all of them: a plan the device cannot train on (pendulum: 7 floats a transition
    // in the dataset) failed only after exploring them, and after 18 600 of 20 000 trials.
    let binding = ctx.limits().max_storage_buffer_binding_size;
    let past_binding = format!("loop.initial_exploration_steps={}", binding / 28 + 1);
    let loop_keys = "lower loop.initial_exploration_steps, loop.trials or loop.trial_length";
    for (extra, needle) in [
        ("planner.population=10000000", "lower population"),
        ("model.hidden=[100000,100000]", "model.hidden"),
        ("model.hidden=[9000,9000]", "model.members"),
        (past_binding.as_str(), "max_storage_buffer_binding_size"),
        (past_binding.as_str(), loop_keys),
        ("loop.initial_exploration_steps=5000000000", loop_keys),
        ("loop.trials=1000000000", loop_keys),
    ] {
        let cfg = tiny(EnvKind::Pendulum, &[extra]);
        let mut env = cfg.env.make();
        let t0 = std::time::Instant::now();
        let e = pets::run(
            ctx,
            &cfg,
            env.as_mut(),
            cfg.env.task(),
            RunOptions { out_dir: Some(dir.clone()), ..Default::default() },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(needle), "{extra}: {e}");
        assert!(t0.elapsed() < std::time::Duration::from_secs(20), "{extra}: refused only after {:?}", t0.elapsed());
        assert!(!dir.exists(), "{extra}: the run folder was created before the refusal");
    }
});

gpu_test!(eval_refuses_a_folder_whose_checkpoint_and_config_disagree_or_whose_manifest_was_edited, |ctx| {
    let dir = std::env::temp_dir().join(format!("lookahead-evalmix-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let cfg = tiny(EnvKind::Pendulum, &[]);
    let mut env = cfg.env.make();
    pets::run(ctx, &cfg, env.as_mut(), cfg.env.task(), RunOptions { out_dir: Some(dir.clone()), ..Default::default() })
        .unwrap();
    assert_eq!(pets::evaluate(ctx, &dir, 1, 0, Default::default()).unwrap().returns.len(), 1);
    // Interrupted after its first episode, a replay stops and keeps the finished ones.
    let stop = Arc::new(AtomicBool::new(false));
    let mut seen = Vec::new();
    let mut on_episode = |ep: usize, r: f64| {
        seen.push((ep, r));
        stop.store(true, Ordering::SeqCst);
    };
    let opts = pets::EvalOptions { interrupt: Some(stop.clone()), on_episode: Some(&mut on_episode) };
    let cut = pets::evaluate(ctx, &dir, 3, 0, opts).unwrap();
    assert!(cut.interrupted && cut.returns.len() == 1, "{cut:?}");
    assert_eq!(seen, vec![(0, cut.returns[0])]);
    assert!(pets::evaluate(ctx, &dir, 0, 0, Default::default()).unwrap_err().to_string().contains("--episodes"));
    // A config from another run beside this checkpoint.
    let good = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    std::fs::write(dir.join("config.toml"), good.replace("hidden = [8]", "hidden = [9]")).unwrap();
    let e = pets::evaluate(ctx, &dir, 1, 0, Default::default()).unwrap_err().to_string();
    assert!(e.contains("mixes two runs"), "{e}");
    std::fs::write(dir.join("config.toml"), good.replace("trial_length = 10", "trial_length = 0")).unwrap();
    assert!(pets::evaluate(ctx, &dir, 1, 0, Default::default()).unwrap_err().to_string().contains("trial_length"));
    std::fs::write(dir.join("config.toml"), &good).unwrap();
    // Elites edited in the manifest: the checksum covers the manifest.
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = header.metadata().clone().unwrap();
    let mut manifest: serde_json::Value = serde_json::from_str(&meta["manifest"]).unwrap();
    let elites = manifest["elites"].as_array().unwrap().clone();
    let edited: Vec<serde_json::Value> = elites.iter().rev().cloned().collect();
    assert_ne!(elites, edited, "the test needs elites to reorder");
    manifest["elites"] = serde_json::Value::Array(edited);
    meta.insert("manifest".into(), manifest.to_string());
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let tensors: Vec<(String, safetensors::tensor::TensorView<'_>)> =
        st.names().into_iter().map(|n| (n.to_string(), st.tensor(n).unwrap())).collect();
    std::fs::write(&path, safetensors::serialize(tensors, Some(meta)).unwrap()).unwrap();
    let e = pets::evaluate(ctx, &dir, 1, 0, Default::default()).unwrap_err().to_string();
    assert!(e.contains("checksum mismatch"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
});

#[test]
fn every_unknown_key_of_a_config_file_is_named_and_numbers_out_of_range_are_said_so() {
    let doc = "seed = 1\nnope = 2\n[planner]\nhorizn = 3\npopulation = 10\n[train]\nlrr = 0.1\n";
    let e = PetsConfig::resolve(EnvKind::Cartpole, Preset::Demo, Some(doc), &[]).unwrap_err().to_string();
    for key in ["nope", "planner.horizn", "train.lrr"] {
        assert!(e.contains(key), "{key} missing from: {e}");
    }
    let e =
        PetsConfig::resolve(EnvKind::Cartpole, Preset::Demo, None, &["planner.population=99999999999999999999".into()])
            .unwrap_err()
            .to_string();
    assert!(e.contains("planner.population") && e.contains("out of range"), "{e}");
    // Every --set problem at once (they were reported one per run), a bracketed value that is
    // not TOML said so, and values of the wrong kind reported with the ranges of the others.
    let sets: Vec<String> =
        ["planner.populaton=3", "foo.bar=2", "model.hiden=[3]", "model.hidden=[16,abc]"].map(String::from).to_vec();
    let e = PetsConfig::resolve(EnvKind::Cartpole, Preset::Demo, None, &sets).unwrap_err().to_string();
    for key in ["planner.populaton", "foo", "model.hiden", "model.hidden"] {
        assert!(e.contains(&format!("{key}:")), "{key} missing from: {e}");
    }
    assert!(e.contains("not a TOML list"), "{e}");
    let doc = "[planner]\npopulation = -5\nhorizon = \"a\"\n[train]\nlr = nan\nepochs = 0\n[model]\nhidden = [0]\n";
    let e = PetsConfig::resolve(EnvKind::Cartpole, Preset::Demo, Some(doc), &[]).unwrap_err().to_string();
    for key in ["planner.population", "planner.horizon", "train.lr", "train.epochs", "model.hidden"] {
        assert!(e.contains(&format!("{key}:")), "{key} missing from: {e}");
    }
    assert!(e.contains("negative") && e.contains("not a whole number"), "{e}");
}

#[test]
fn section_seeds_are_refused_rather_than_silently_replaced() {
    for key in ["planner.seed=3", "train.seed=3"] {
        let e = PetsConfig::resolve(EnvKind::Cartpole, Preset::Demo, None, &[key.into()]).unwrap_err().to_string();
        assert!(e.contains(key.split('=').next().unwrap()) && e.contains("top-level"), "{e}");
    }
    PetsConfig::resolve(EnvKind::Cartpole, Preset::Demo, None, &["seed=3".into()]).expect("the run's seed");
}

#[test]
fn a_type_error_in_a_config_file_names_the_key_not_a_line_of_an_internal_document() {
    let doc = "seed = 1\n[planner]\npopulation = \"many\"\n";
    let e = PetsConfig::resolve(EnvKind::Cartpole, Preset::Demo, Some(doc), &[]).unwrap_err().to_string();
    assert!(e.contains("planner.population"), "{e}");
    assert!(!e.contains("line"), "{e}");
    let e = PetsConfig::resolve(EnvKind::Cartpole, Preset::Demo, None, &["train.epochs=\"x\"".into()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("train.epochs"), "{e}");
}

// A run stopped in the middle of a trial and resumed finishes exactly as a run that never
// stopped: the same trial returns, the same model, every transition stored once.
gpu_test!(a_resumed_run_finishes_exactly_as_an_uninterrupted_one, |ctx| {
    let cfg = tiny(
        EnvKind::Pendulum,
        &[
            "loop.trials=3",
            "loop.trial_length=12",
            "loop.freq_train_model=5",
            "planner.population=12",
            "planner.particles=2",
        ],
    );
    let base = std::env::temp_dir().join(format!("lookahead-resume-{}", std::process::id()));
    std::fs::remove_dir_all(&base).ok();
    let (straight_dir, stopped_dir) = (base.join("straight"), base.join("stopped"));
    let mut env = cfg.env.make();
    let straight = pets::run(
        ctx,
        &cfg,
        env.as_mut(),
        cfg.env.task(),
        RunOptions { out_dir: Some(straight_dir.clone()), ..Default::default() },
    )
    .unwrap();
    // Stop in the middle of the second trial.
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let mut progress = |p: &pets::Progress| {
        if p.trial == 1 && p.step == 7 {
            flag.store(true, Ordering::SeqCst);
        }
    };
    let mut env = cfg.env.make();
    let opts = RunOptions {
        out_dir: Some(stopped_dir.clone()),
        interrupt: Some(stop),
        progress: Some(&mut progress),
        ..Default::default()
    };
    let first = pets::run(ctx, &cfg, env.as_mut(), cfg.env.task(), opts).unwrap();
    assert!(first.interrupted);
    assert_eq!(first.trials.len(), 1);
    // Resuming needs the same config, and picks up after the first trial.
    let other = tiny(EnvKind::Pendulum, &["loop.trials=4"]);
    let mut env = cfg.env.make();
    let e = pets::run(
        ctx,
        &other,
        env.as_mut(),
        other.env.task(),
        RunOptions { out_dir: Some(stopped_dir.clone()), resume: true, ..Default::default() },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("another config") && e.contains("loop.trials: 4 here, 3 in the folder"), "{e}");
    let mut env = cfg.env.make();
    let resumed = pets::run(
        ctx,
        &cfg,
        env.as_mut(),
        cfg.env.task(),
        RunOptions { out_dir: Some(stopped_dir.clone()), resume: true, ..Default::default() },
    )
    .unwrap();
    let returns = |s: &pets::PetsSummary| s.trials.iter().map(|t| (t.env_step, t.total_return)).collect::<Vec<_>>();
    assert_eq!(returns(&resumed), returns(&straight), "resumed trials differ from the uninterrupted run");
    let model = |d: &std::path::Path| Checkpoint::load(d.join("model.safetensors")).unwrap();
    assert_eq!(model(&stopped_dir), model(&straight_dir), "the final models differ");
    let transitions = |d: &std::path::Path| pets::saved_transitions(d, 3, 1).unwrap();
    assert_eq!(transitions(&stopped_dir), transitions(&straight_dir), "the stored transitions differ");
    assert_eq!(
        std::fs::read_to_string(stopped_dir.join("results.csv")).unwrap().lines().count(),
        std::fs::read_to_string(straight_dir.join("results.csv")).unwrap().lines().count()
    );
    // Resuming the finished run rewrites a deleted or damaged model from the resume point
    // (it used to report success and leave the model missing or corrupt).
    let resume_again = || {
        let mut env = cfg.env.make();
        pets::run(
            ctx,
            &cfg,
            env.as_mut(),
            cfg.env.task(),
            RunOptions { out_dir: Some(stopped_dir.clone()), resume: true, ..Default::default() },
        )
    };
    std::fs::remove_file(stopped_dir.join("model.safetensors")).unwrap();
    resume_again().expect("resume of a finished run");
    assert_eq!(model(&stopped_dir), model(&straight_dir), "the model was not restored");
    let mut bytes = std::fs::read(stopped_dir.join("model.safetensors")).unwrap();
    let k = bytes.len() - 50;
    bytes[k] ^= 0x10;
    std::fs::write(stopped_dir.join("model.safetensors"), &bytes).unwrap();
    resume_again().expect("resume of a finished run");
    assert_eq!(model(&stopped_dir), model(&straight_dir), "the damaged model was not rewritten");
    // A state whose trial count disagrees with its trials is refused, naming both.
    let path = stopped_dir.join("resume.json");
    let good = std::fs::read_to_string(&path).unwrap();
    let mut edited: serde_json::Value = serde_json::from_str(&good).unwrap();
    edited["trials_done"] = serde_json::json!(1);
    std::fs::write(&path, edited.to_string()).unwrap();
    let e = resume_again().unwrap_err().to_string();
    assert!(e.contains("says 1 trials are done but lists 3"), "{e}");
    std::fs::write(&path, &good).unwrap();
    // A replay file that is not the one the state names is refused.
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(stopped_dir.join("resume.json")).unwrap()).unwrap();
    std::fs::write(stopped_dir.join(state["replay_file"].as_str().unwrap()), b"not the file").unwrap();
    let mut env = cfg.env.make();
    let e = pets::run(
        ctx,
        &cfg,
        env.as_mut(),
        cfg.env.task(),
        RunOptions { out_dir: Some(stopped_dir.clone()), resume: true, ..Default::default() },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("not the file resume.json was written with"), "{e}");
    std::fs::remove_dir_all(&base).ok();
});

gpu_test!(a_trainer_and_a_planner_too_large_are_both_reported_at_once, |ctx| {
    let cfg = tiny(EnvKind::Pendulum, &["planner.population=10000000", "train.batch_size=100000000"]);
    let mut env = cfg.env.make();
    let e = pets::run(ctx, &cfg, env.as_mut(), cfg.env.task(), RunOptions::default()).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, lookahead::Error::InvalidConfigs(_)), "{text}");
    assert!(text.contains("lower population") && text.contains("train.batch_size"), "{text}");
});

gpu_test!(overwrite_replaces_only_a_runs_files_and_refuses_a_folder_no_run_wrote, |ctx| {
    let dir = std::env::temp_dir().join(format!("lookahead-foreign-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let cfg = tiny(EnvKind::Pendulum, &[]);
    let mut env = cfg.env.make();
    let mut run = |overwrite: bool| {
        let opts = RunOptions { out_dir: Some(dir.clone()), overwrite, ..Default::default() };
        pets::run(ctx, &cfg, env.as_mut(), cfg.env.task(), opts)
    };
    // A folder of a user's files, some with a run file's name: refused, every file kept.
    std::fs::create_dir_all(&dir).unwrap();
    let foreign = [("config.toml", "user = 1\n"), ("results.csv", "a,b\n"), ("notes.txt", "mine\n")];
    for (name, text) in foreign {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let e = run(true).unwrap_err().to_string();
    assert!(e.contains("no run.json") && e.contains("choose another folder"), "{e}");
    for (name, text) in foreign {
        assert_eq!(std::fs::read_to_string(dir.join(name)).unwrap(), text, "{name} was touched");
    }
    // A run's folder with a user's files beside the run's: overwrite replaces the run's files
    // and leaves the others alone (a backup that looks like a point's file included).
    std::fs::remove_dir_all(&dir).unwrap();
    run(false).expect("a new folder");
    let marker = std::fs::read_to_string(dir.join("run.json")).unwrap();
    assert!(marker.contains("\"kind\":\"pets\""), "{marker}");
    std::fs::write(dir.join("notes.txt"), "mine\n").unwrap();
    std::fs::write(dir.join("replay.backup.safetensors"), "backup").unwrap();
    run(true).expect("overwrite");
    assert_eq!(std::fs::read_to_string(dir.join("notes.txt")).unwrap(), "mine\n");
    assert_eq!(std::fs::read_to_string(dir.join("replay.backup.safetensors")).unwrap(), "backup");
    assert_ne!(std::fs::read_to_string(dir.join("run.json")).unwrap(), marker, "a new run has a new id");
    std::fs::remove_dir_all(&dir).ok();
});

#[cfg(unix)]
gpu_test!(a_symlink_where_a_run_file_belongs_is_refused_and_its_target_kept, |ctx| {
    let dir = std::env::temp_dir().join(format!("lookahead-link-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let cfg = tiny(EnvKind::Pendulum, &[]);
    let mut env = cfg.env.make();
    let mut run = |overwrite: bool, resume: bool| {
        let opts = RunOptions { out_dir: Some(dir.clone()), overwrite, resume, ..Default::default() };
        pets::run(ctx, &cfg, env.as_mut(), cfg.env.task(), opts)
    };
    run(false, false).expect("a new folder");
    let outside = std::env::temp_dir().join(format!("lookahead-link-target-{}", std::process::id()));
    std::fs::write(&outside, "elsewhere\n").unwrap();
    for name in ["metrics.jsonl", "results.csv"] {
        let kept = dir.join(format!("{name}.kept"));
        std::fs::rename(dir.join(name), &kept).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join(name)).unwrap();
        for (overwrite, resume) in [(true, false), (false, true)] {
            let e = run(overwrite, resume).unwrap_err().to_string();
            assert!(e.contains("is a symlink") && e.contains(name), "{e}");
            assert_eq!(std::fs::read_to_string(&outside).unwrap(), "elsewhere\n", "written through {name}");
        }
        std::fs::remove_file(dir.join(name)).unwrap();
        std::fs::rename(&kept, dir.join(name)).unwrap();
    }
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_file(&outside).ok();
});

gpu_test!(an_edited_resume_point_is_refused_naming_what_lies_outside_the_plan, |ctx| {
    let dir = std::env::temp_dir().join(format!("lookahead-edited-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let cfg = tiny(EnvKind::Pendulum, &[]);
    let mut env = cfg.env.make();
    let mut run = |resume: bool| {
        let opts = RunOptions { out_dir: Some(dir.clone()), resume, ..Default::default() };
        pets::run(ctx, &cfg, env.as_mut(), cfg.env.task(), opts)
    };
    run(false).expect("a new folder");
    let state = std::fs::read_to_string(dir.join("resume.json")).unwrap();
    let original: serde_json::Value = serde_json::from_str(&state).unwrap();
    for (key, value) in [("version", 2u64), ("env_steps", u64::MAX), ("episode", u64::MAX), ("trials_done", 5)] {
        let mut edited = original.clone();
        edited[key] = value.into();
        if key == "trials_done" {
            // As many trials listed, in order, so that only the plan can refuse it.
            let trials: Vec<serde_json::Value> = (0..5)
                .map(|i| {
                    let mut t = original["trials"][0].clone();
                    t["trial"] = i.into();
                    t
                })
                .collect();
            edited["trials"] = trials.into();
            // And the files named as point 5's, so that the names pass too.
            for (field, stem) in [("replay_file", "replay"), ("trainer_file", "resume")] {
                let name = original[field].as_str().unwrap();
                std::fs::copy(dir.join(name), dir.join(format!("{stem}.5.safetensors"))).unwrap();
                edited[field] = format!("{stem}.5.safetensors").into();
            }
        }
        std::fs::write(dir.join("resume.json"), serde_json::to_string(&edited).unwrap()).unwrap();
        let e = run(true).unwrap_err().to_string();
        assert!(e.contains(key) && e.contains("not written by a run of this config"), "{key}: {e}");
    }
    // A replay buffer (with its checksum) that does not hold the steps the state counts, and a
    // trainer of another architecture, are refused.
    let replay = original["replay_file"].as_str().unwrap();
    let kept = std::fs::read(dir.join(replay)).unwrap();
    lookahead::train::ReplayBuffer::new(3, 1).save(&dir.join(replay)).unwrap();
    let mut edited = original.clone();
    edited["replay_sha256"] = lookahead::run::sha256_file(&dir.join(replay)).unwrap().into();
    std::fs::write(dir.join("resume.json"), edited.to_string()).unwrap();
    let e = run(true).unwrap_err().to_string();
    assert!(e.contains("holds 0 transitions, the point counts 20 steps"), "{e}");
    std::fs::write(dir.join(replay), kept).unwrap();
    let trainer = original["trainer_file"].as_str().unwrap();
    let mut ckpt = Checkpoint::load(dir.join(trainer)).unwrap();
    let other = lookahead::model::EnsembleSpec { hidden: vec![9], ..ckpt.ensemble.spec.clone() };
    ckpt.ensemble = lookahead::model::Ensemble::random(other, 0).unwrap();
    ckpt.adam = None;
    ckpt.save(dir.join(trainer)).unwrap();
    let mut edited = original.clone();
    edited["trainer_sha256"] = lookahead::run::sha256_file(&dir.join(trainer)).unwrap().into();
    std::fs::write(dir.join("resume.json"), edited.to_string()).unwrap();
    let e = run(true).unwrap_err().to_string();
    assert!(e.contains("the point's trainer holds") && e.contains("hidden [9]"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
});
