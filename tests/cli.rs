//! The command line: `mpc` writes its trajectory CSV, `bench plan --quick` its JSON report.

use std::process::Command;
use std::time::{Duration, Instant};

fn out_text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lookahead"))
}

#[test]
fn mpc_writes_a_trajectory_with_the_documented_columns() {
    let path = std::env::temp_dir().join(format!("lookahead-traj-{}.csv", std::process::id()));
    let out = bin()
        .args(["mpc", "--env", "cartpole", "--seed", "3", "--set", "population=100", "--trajectory"])
        .arg(&path)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Headless machines get no display-probe noise (Mesa's device-select layer is off there).
    assert!(
        std::env::var_os("DISPLAY").is_some()
            || std::env::var_os("WAYLAND_DISPLAY").is_some()
            || !stderr.contains("XDG_RUNTIME_DIR"),
        "unexpected stderr: {stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("return 200.00 over 200 steps"), "{stdout}");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("step,obs_0,obs_1,obs_2,obs_3,action_0,reward"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 200);
    assert!(rows[0].starts_with("0,") && rows[199].starts_with("199,"));
    std::fs::remove_file(&path).ok();
}

#[test]
fn bad_arguments_fail_with_a_message_and_no_panic() {
    for args in [&["mpc", "--env", "acrobot"][..], &["mpc", "--set", "horizon=0"], &["mpc", "--set", "nope=1"]] {
        let out = bin().args(args).output().expect("runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with("error: ") && !err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn quick_plan_bench_writes_the_documented_json() {
    let path = std::env::temp_dir().join(format!("lookahead-bench-{}.json", std::process::id()));
    let out = bin().args(["bench", "plan", "--quick", "--profile", "--json"]).arg(&path).output().expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for k in ["name", "backend", "driver"] {
        assert!(v["adapter"][k].is_string(), "adapter.{k}");
    }
    assert_eq!(v["shader_checks"], "policy");
    let timestamps = v["timestamps"].as_bool().expect("timestamps is reported");
    let results = v["results"].as_array().unwrap();
    assert!(!results.is_empty());
    // quick_cartpole_ts1: 2 iterations × (sample, begin_rollout, 15 steps, particle_mean, rank,
    // update) + the warm-start shift. A step is one model_step dispatch (model_step = fused, on
    // GPUs), or the network and propagate: the network is one dispatch (fused), one per layer
    // (tiled) or one per layer and member (the row kernel that CPU rasterisers get: 5 layers × 7
    // members).
    let net = results[0]["mlp_kernel"].as_str().expect("the network kernel is reported");
    let one_dispatch = results[0]["model_step"].as_str().expect("the model step is reported") == "fused";
    let network = match net {
        "fused" | "coop16" => 1,
        "tiled" => 5,
        "rows" => 35,
        other => panic!("unknown network kernel {other}"),
    };
    let step = if one_dispatch { 1 } else { 1 + network };
    assert_eq!(results[0]["dispatches_per_plan"].as_u64(), Some(2 * (2 + 15 * step + 3) + 1));
    for r in results {
        if timestamps {
            let p = r["profile"].as_object().expect("a profile per case");
            // Every kind rolls out and averages particles; sampling and updates differ by kind.
            let step: &[&str] = match (one_dispatch, net) {
                (true, _) => &["model_step"],
                (false, "fused") => &["mlp_fused", "propagate"],
                (false, "coop16") => &["mlp_coop", "propagate"],
                _ => &["layer0", "layer4", "propagate"],
            };
            for k in ["begin_rollout", "particle_mean"].iter().chain(step) {
                assert!(p[*k].as_f64().is_some_and(|ms| ms > 0.0), "profile.{k} in {r}");
            }
            let gpu: f64 = p.values().filter_map(|v| v.as_f64()).sum();
            let wall = r["p50_ms"].as_f64().unwrap();
            assert!(gpu > 0.2 * wall && gpu < 5.0 * wall, "GPU {gpu} ms against a wall time of {wall} ms");
        }
        for k in [
            "population",
            "particles",
            "horizon",
            "iterations",
            "p50_ms",
            "p90_ms",
            "p99_ms",
            "model_steps_per_s",
            "gflops",
        ] {
            assert!(r[k].as_f64().is_some_and(|x| x > 0.0), "{k} in {r}");
        }
        assert!(r["name"].is_string());
    }
    std::fs::remove_file(&path).ok();
}

#[test]
fn quick_train_bench_writes_the_documented_json() {
    let path = std::env::temp_dir().join(format!("lookahead-train-bench-{}.json", std::process::id()));
    let out = bin().args(["bench", "train", "--quick", "--json"]).arg(&path).output().expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for k in ["name", "backend", "driver"] {
        assert!(v["adapter"][k].is_string(), "adapter.{k}");
    }
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for r in results {
        for k in ["transitions", "seconds_per_epoch", "transitions_per_s"] {
            assert!(r[k].as_f64().is_some_and(|x| x > 0.0), "{k} in {r}");
        }
    }
    std::fs::remove_file(&path).ok();
}

/// `bench sac --quick` (one case of it: a whole quick suite takes a minute and a half on
/// lavapipe): the adapter, the timing and, with timestamps, the per-kernel profile of a
/// submission of one update and the next action.
#[test]
fn quick_sac_bench_writes_the_documented_json() {
    let path = std::env::temp_dir().join(format!("lookahead-sac-bench-{}.json", std::process::id()));
    let out = bin()
        .args(["bench", "sac", "--quick", "--profile", "--only", "sac_pendulum_u1", "--json"])
        .arg(&path)
        .output()
        .expect("runs");
    let text = out_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("adapter: ") && text.contains("verified: the SAC update"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for k in ["name", "backend", "driver"] {
        assert!(v["adapter"][k].is_string(), "adapter.{k}");
    }
    let timestamps = v["timestamps"].as_bool().expect("timestamps is reported");
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    let r = &results[0];
    assert_eq!(r["name"], "sac_pendulum_u1");
    for (k, want) in [("obs_dim", 3), ("act_dim", 1), ("batch", 256), ("updates_per_submission", 1)] {
        assert_eq!(r[k].as_u64(), Some(want), "{k} in {r}");
    }
    assert_eq!(r["hidden"], serde_json::json!([256, 256]));
    for k in ["p50_ms", "p90_ms", "updates_per_s"] {
        assert!(r[k].as_f64().is_some_and(|x| x > 0.0), "{k} in {r}");
    }
    // An update with the actor, α and the targets through 2×256 networks: sample, the actor
    // on s′ (3 layers), policy_next, the targets (3), the critics (3), critic_grad, their
    // backward pass (3 weight + 2 input gradients), Adam (3); the actor on s (3), policy_cur,
    // the critics on (s, ã) (3), actor_q_grad, their input gradients (3), actor_grad, the
    // actor's backward pass (3 + 2), Adam (3); update_stats, α's Adam (3), polyak: 45. The
    // action: the actor (3) and act.
    assert_eq!(r["dispatches_per_submission"].as_u64(), Some(45 + 4), "{r}");
    if timestamps {
        let p = r["profile"].as_object().expect("a profile per case");
        for k in ["sample", "forward", "backward_weights", "backward_input", "adam_step", "polyak", "act"] {
            assert!(p[k].as_f64().is_some_and(|ms| ms > 0.0), "profile.{k} in {r}");
        }
        let gpu = r["gpu_ms_per_update"].as_f64().expect("GPU ms per update");
        let wall = r["p50_ms"].as_f64().unwrap();
        assert!(gpu > 0.2 * wall && gpu < 5.0 * wall, "GPU {gpu} ms against a wall time of {wall} ms");
    }
    std::fs::remove_file(&path).ok();
}

/// `bench mbpo` at tiny sizes: the adapter, the verification, each part's timing and its
/// amortised share of an environment step, and with timestamps the rollouts' and the SAC
/// submission's per-kernel profiles.
#[test]
fn tiny_mbpo_bench_writes_the_documented_json() {
    let path = std::env::temp_dir().join(format!("lookahead-mbpo-bench-{}.json", std::process::id()));
    let sizes = "--rollouts 500 --freq 250 --length 2 --updates 2 --batch 64 --hidden 16 --members 3 --elites 2 \
                 --model-hidden 16 --model-layers 2 --dataset 300 --train-epochs 2 --warmup 1 --repeats 2";
    let out = bin()
        .args(["bench", "mbpo", "--profile", "--json"])
        .arg(&path)
        .args(sizes.split_whitespace())
        .output()
        .expect("runs");
    let text = out_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("adapter: ") && text.contains("verified: the rollouts'"), "{text}");
    assert!(text.contains("total per env step"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for k in ["name", "backend", "driver"] {
        assert!(v["adapter"][k].is_string(), "adapter.{k}");
    }
    let timestamps = v["timestamps"].as_bool().expect("timestamps is reported");
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    let r = &results[0];
    assert_eq!(r["name"], "mbpo_halfcheetah");
    for (k, want) in [
        ("obs_dim", 17),
        ("act_dim", 6),
        ("rollouts", 500),
        ("rollouts_per_step", 2),
        ("length", 2),
        ("freq_train_model", 250),
        ("updates_per_step", 2),
        ("batch", 64),
        ("members", 3),
        ("elites", 2),
        ("dataset", 300),
        ("train_epochs", 2),
        ("repeats", 2),
        // 500 rollouts × 2 steps × 4 trainings per 1 000-step epoch.
        ("model_capacity", 4000),
    ] {
        assert_eq!(r[k].as_u64(), Some(want), "{k} in {r}");
    }
    assert_eq!(r["sac_hidden"], serde_json::json!([16, 16]));
    assert_eq!(r["model_hidden"], serde_json::json!([16, 16]));
    // Two updates of 45 dispatches (two hidden layers; `bench sac`'s count) and the action's 4.
    assert_eq!(r["sac_dispatches_per_submission"].as_u64(), Some(2 * 45 + 4), "{r}");
    let parts = &r["parts"];
    let mut sum = 0.0;
    for (part, calls) in [("act_update", 1.0), ("rollouts", 1.0 / 250.0), ("training", 1.0 / 250.0)] {
        let p = &parts[part];
        let p50 = p["p50_ms"].as_f64().unwrap();
        assert!(p50 > 0.0 && p["p90_ms"].as_f64().unwrap() >= p50, "{part} in {r}");
        assert_eq!(p["calls_per_step"].as_f64(), Some(calls), "{part} in {r}");
        let per_step = p["ms_per_step"].as_f64().unwrap();
        assert!((per_step - p50 * calls).abs() <= 1e-9 * per_step, "{part} in {r}");
        sum += per_step;
    }
    let total = r["ms_per_step"].as_f64().unwrap();
    assert!((total - sum).abs() <= 1e-9 * total, "{r}");
    assert!((r["env_steps_per_s"].as_f64().unwrap() - 1e3 / total).abs() <= 1e-6 * (1e3 / total), "{r}");
    for k in ["rollouts_per_s", "model_steps_per_s", "updates_per_s", "train_seconds_per_epoch"] {
        assert!(r[k].as_f64().is_some_and(|x| x > 0.0), "{k} in {r}");
    }
    if timestamps {
        let p = r["rollout_profile"].as_object().expect("a rollout profile");
        for k in ["rollout_start", "rollout_policy", "rollout_model", "rollout_rank", "rollout_store"] {
            assert!(p[k].as_f64().is_some_and(|ms| ms > 0.0), "rollout_profile.{k} in {r}");
        }
        // One pass: the start states, then per step the actor (3 layers), rollout_policy, the
        // ensemble (3 layers, every member at once), rollout_model, rollout_rank, rollout_store.
        assert_eq!(r["passes"].as_u64(), Some(1), "{r}");
        assert_eq!(r["rollout_dispatches_per_batch"].as_u64(), Some(1 + 2 * (3 + 1 + 3 + 3)), "{r}");
        let p = r["sac_profile"].as_object().expect("a SAC profile");
        for k in ["sample", "forward", "adam_step", "polyak", "act"] {
            assert!(p[k].as_f64().is_some_and(|ms| ms > 0.0), "sac_profile.{k} in {r}");
        }
    }
    std::fs::remove_file(&path).ok();
}

/// `bench mbpo` refuses impossible sizes before it opens the adapter, naming the flag.
#[test]
fn mbpo_bench_refuses_bad_sizes_first() {
    let t0 = Instant::now();
    let out = bin().args(["bench", "mbpo", "--rollouts", "1000", "--freq", "300"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(2), "{}", out_text(&out));
    let text = out_text(&out);
    assert!(text.contains("--rollouts") && text.contains("--freq 300") && !text.contains("adapter: "), "{text}");
    assert!(t0.elapsed() < Duration::from_secs(10), "refused after {:?}", t0.elapsed());
}

#[test]
fn output_paths_are_checked_before_the_work() {
    let t0 = Instant::now();
    let out = bin().args(["bench", "plan", "--json", "/proc/lookahead-no/x.json"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(2), "{}", out_text(&out));
    assert_eq!(out_text(&out).matches("does not exist").count(), 1, "said once: {}", out_text(&out));
    // The full suite would take minutes on lavapipe: the refusal comes first.
    assert!(t0.elapsed() < Duration::from_secs(10), "refused after {:?}", t0.elapsed());
    let dir = std::env::temp_dir().join(format!("lookahead-trajdir-{}.csv", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = bin().args(["mpc", "--env", "pendulum", "--trajectory"]).arg(&dir).output().expect("runs");
    assert_eq!(out.status.code(), Some(2), "{}", out_text(&out));
    assert!(out_text(&out).contains("is a folder"), "{}", out_text(&out));
    let parent = dir.parent().unwrap();
    let stray = std::fs::read_dir(parent).unwrap().filter_map(|e| e.ok()).any(|e| {
        let n = e.file_name().to_string_lossy().to_string();
        n.contains("lookahead-trajdir") && n.ends_with("tmp")
    });
    assert!(!stray, "a temporary file was left behind");
    std::fs::remove_dir_all(&dir).ok();
}

/// A `lookahead` command whose stderr is read line by line (which also keeps its pipe from
/// filling), interrupted with SIGINT; killed if a test leaves it running.
struct Interrupted {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    stderr: String,
}

impl Interrupted {
    fn start(args: &[&str]) -> Self {
        use std::io::BufRead;
        let mut child = bin()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("starts");
        let (tx, lines) = std::sync::mpsc::channel::<String>();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines, stderr: String::new() }
    }

    /// Waits up to `limit` for `ready` (given the stderr so far), the command still running.
    fn wait_for(&mut self, what: &str, limit: Duration, ready: impl Fn(&str) -> bool) {
        let t0 = Instant::now();
        while !ready(&self.stderr) {
            assert!(self.child.try_wait().unwrap().is_none(), "ended before {what}: {}", self.stderr);
            assert!(t0.elapsed() < limit, "no {what} after {limit:?}: {}", self.stderr);
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(20)) {
                self.stderr.push_str(&line);
                self.stderr.push('\n');
            }
        }
    }

    fn interrupt(&self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-INT", &pid]).status().expect("kill runs").success());
    }

    /// Waits for the exit, at most `limit`: the status, the time it took, stdout and stderr.
    fn exit_within(&mut self, limit: Duration) -> (std::process::ExitStatus, Duration, String, String) {
        use std::io::Read;
        let t0 = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            assert!(t0.elapsed() < limit, "still running {limit:?} after the signal: {}", self.stderr);
            std::thread::sleep(Duration::from_millis(10));
        };
        let took = t0.elapsed();
        let mut stdout = String::new();
        self.child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.stderr.push_str(&line);
            self.stderr.push('\n');
        }
        (status, took, stdout, self.stderr.clone())
    }
}

impl Drop for Interrupted {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// The longest time from Ctrl-C to the exit of a stopped command: the engine checks within a
/// second; the rest is room for a loaded two-core machine running lavapipe.
const STOP_BOUND: Duration = Duration::from_secs(5);

/// `lookahead pets` on the demo pendulum into `dir` with `sets`.
fn pets_args<'a>(dir: &'a std::path::Path, sets: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["pets", "--env", "pendulum", "--preset", "demo", "--overwrite", "--out", dir.to_str().unwrap()];
    for s in sets {
        args.extend(["--set", s]);
    }
    args
}

/// Ctrl-C stops a run in every phase within seconds of the signal, says where, and exits with
/// status 130: during the exploration (4.5 million steps, within what lavapipe could train on), the first scoring pass of a training
/// (500k transitions, 99% of them scored every epoch: one pass takes longer than the bound on
/// lavapipe, so a scoring pass that ignores the flag fails), the training epochs (many, on 50
/// transitions) and the planned steps.
#[test]
fn ctrl_c_stops_a_run_in_every_phase_within_seconds_with_status_130() {
    let dir = std::env::temp_dir().join(format!("lookahead-phases-{}", std::process::id()));
    let file = |name: &'static str| {
        let d = dir.clone();
        move |_: &str| d.join(name).exists()
    };
    let trained = {
        let d = dir.clone();
        move |_: &str| std::fs::read_to_string(d.join("metrics.jsonl")).is_ok_and(|m| m.contains("\"event\":\"train\""))
    };
    type Ready = Box<dyn Fn(&str) -> bool>;
    let phases: [(&str, Vec<&str>, Ready, &str); 4] = [
        (
            "exploration",
            vec!["loop.initial_exploration_steps=4500000"],
            Box::new(file("config.toml")),
            "exploration step",
        ),
        (
            "scoring",
            vec!["loop.initial_exploration_steps=500000", "train.validation_ratio=0.99", "train.epochs=100000"],
            Box::new(file("resume.json")),
            "training before trial 1, step 1",
        ),
        (
            "training",
            vec!["loop.initial_exploration_steps=50", "train.epochs=100000"],
            Box::new(file("resume.json")),
            "training before trial 1, step 1",
        ),
        ("planning", vec!["loop.initial_exploration_steps=50", "train.epochs=1"], Box::new(trained), "trial 1, step"),
    ];
    for (phase, sets, ready, stopped_at) in phases {
        std::fs::remove_dir_all(&dir).ok();
        let mut run = Interrupted::start(&pets_args(&dir, &sets));
        run.wait_for(phase, Duration::from_secs(120), ready);
        // Into the phase: the run folder is written before the exploration, the consistent
        // point after it, the training event before the planned steps.
        std::thread::sleep(Duration::from_millis(500));
        run.interrupt();
        let (status, took, stdout, stderr) = run.exit_within(STOP_BOUND);
        eprintln!("{phase}: exited {took:?} after Ctrl-C");
        assert_eq!(status.code(), Some(130), "{phase}: {status:?}\n{stdout}\n{stderr}");
        assert!(stdout.contains(&format!("interrupted at {stopped_at}")), "{phase}: {stdout}\n{stderr}");
    }
    lookahead::train::checkpoint::Checkpoint::load(dir.join("model.safetensors")).expect("the last run's checkpoint");
    std::fs::remove_dir_all(&dir).ok();
}

/// A config file past 1 MiB is refused before it is parsed (a 50 MB array took 5.8 GB to
/// parse), by every command that reads one, naming the file and the limit.
#[test]
fn a_config_file_past_one_mebibyte_is_refused_before_parsing() {
    let path = std::env::temp_dir().join(format!("lookahead-bigconfig-{}.toml", std::process::id()));
    let list = vec!["1.0"; 1 << 20].join(", ");
    std::fs::write(&path, format!("[model]\nhidden = [{list}]\n")).unwrap();
    let commands: [&[&str]; 3] = [&["config", "print", "--config"], &["config", "validate"], &["mpc", "--config"]];
    for args in commands {
        let t0 = std::time::Instant::now();
        let out = bin().args(args).arg(&path).output().expect("runs");
        let text = out_text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {text}");
        assert!(text.contains(&path.display().to_string()) && text.contains("at most 1048576 bytes (1 MiB)"), "{text}");
        assert!(t0.elapsed() < std::time::Duration::from_secs(10), "{args:?}: refused after {:?}", t0.elapsed());
    }
    std::fs::remove_file(&path).ok();
}

/// A kernel the benchmark cannot run here (the fused model step needs the fused or coop16
/// network kernel) is reported as such, with why, and not as "wrong maths", which it was.
#[test]
fn a_bench_kernel_that_cannot_run_is_not_called_wrong_maths() {
    let out = bin().args(["bench", "plan", "--quick", "--mlp-kernel", "tiled", "--model-step", "fused"]).output();
    let out = out.expect("runs");
    let text = out_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("cannot run the tiled network kernel with model step fused"), "{text}");
    assert!(text.contains("needs the fused or coop16 network kernel"), "{text}");
    assert!(!text.contains("wrong maths") && !text.contains("fails verification"), "{text}");
}

/// A run plan the device cannot train on (initial_exploration_steps + trials × trial_length
/// transitions) is refused before exploring, naming the keys: 5 000 000 exploration steps
/// failed only after exploring them and writing a 220 MB resume point that could not resume.
#[test]
fn a_run_storing_more_transitions_than_the_device_trains_on_is_refused_before_exploring() {
    let dir = std::env::temp_dir().join(format!("lookahead-bigplan-{}", std::process::id()));
    for set in ["loop.initial_exploration_steps=5000000000", "loop.trials=1000000000"] {
        let t0 = std::time::Instant::now();
        let out = bin().args(["pets", "--env", "pendulum", "--set", set, "--out"]).arg(&dir).output().expect("runs");
        let text = out_text(&out);
        assert_eq!(out.status.code(), Some(2), "{set}: {text}");
        assert!(text.contains("lower loop.initial_exploration_steps, loop.trials or loop.trial_length"), "{text}");
        assert!(t0.elapsed() < std::time::Duration::from_secs(20), "{set}: refused after {:?}", t0.elapsed());
        assert!(!dir.exists(), "{set}: the run folder was created");
    }
}

/// Ctrl-C during a long training phase stops the run within seconds with a loadable checkpoint;
/// a second Ctrl-C, sent once the run has acknowledged the first (so the two cannot merge into
/// one pending signal), exits at once with status 130 — not a crash from exiting while the
/// main thread still drives the GPU. If the run finished its graceful stop before the second
/// press arrived (a race the test cannot rule out on a fast machine), the scenario is repeated,
/// up to four times.
#[test]
fn ctrl_c_during_training_stops_the_run_and_a_second_one_exits_at_once() {
    let dir = std::env::temp_dir().join(format!("lookahead-sigint-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let sets = ["train.epochs=100000", "loop.initial_exploration_steps=50"];
    for presses in [1, 2] {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut run = Interrupted::start(&pets_args(&dir, &sets));
            // Exploration is quick; then the first training runs for minutes unless interrupted.
            let point = dir.join("resume.json");
            run.wait_for("the first training", Duration::from_secs(120), |_| point.exists());
            std::thread::sleep(Duration::from_millis(500));
            run.interrupt();
            if presses == 2 {
                run.wait_for("an acknowledgement of Ctrl-C", Duration::from_secs(30), |e| {
                    e.contains("interrupt: finishing")
                });
                run.interrupt();
            }
            let (status, _, stdout, stderr) = run.exit_within(Duration::from_secs(30));
            assert_eq!(status.code(), Some(130), "{presses} Ctrl-C: {status:?}\n{stdout}\n{stderr}");
            if presses == 1 {
                assert!(stdout.contains("interrupted at training before trial 1"), "{stdout}");
                lookahead::train::checkpoint::Checkpoint::load(dir.join("model.safetensors"))
                    .expect("the interrupted training saved a checkpoint");
                break;
            }
            if stderr.contains("second interrupt: exiting now") {
                eprintln!("the second Ctrl-C exited with 130 on attempt {attempt}");
                break;
            }
            // The graceful stop ended before the second press was handled: again.
            assert!(attempt < 4, "the second Ctrl-C never arrived before the graceful stop:\n{stdout}\n{stderr}");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// `eval` shows each episode as it ends; Ctrl-C stops it within seconds, reports the finished
/// episodes' returns and mean, and exits with status 130.
#[test]
fn ctrl_c_stops_eval_with_the_finished_episodes_and_status_130() {
    let dir = std::env::temp_dir().join(format!("lookahead-evalint-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let sets = ["loop.initial_exploration_steps=50", "train.epochs=1", "loop.trials=1", "loop.trial_length=20"];
    let out = bin().args(pets_args(&dir, &sets)).output().expect("runs");
    assert!(out.status.success(), "{}", out_text(&out));
    let mut eval = Interrupted::start(&["eval", "--run", dir.to_str().unwrap(), "--episodes", "1000000000"]);
    eval.wait_for("a finished episode", Duration::from_secs(120), |e| e.contains("episode 1/1000000000: return"));
    eval.interrupt();
    let (status, took, stdout, stderr) = eval.exit_within(STOP_BOUND);
    eprintln!("eval: exited {took:?} after Ctrl-C");
    assert_eq!(status.code(), Some(130), "{status:?}\n{stdout}\n{stderr}");
    let line = stdout.lines().find(|l| l.contains("interrupted after")).unwrap_or_else(|| panic!("{stdout}"));
    let finished = stderr.lines().filter(|l| l.starts_with("episode ")).count();
    assert!(line.contains(&format!("after {finished} of 1000000000 episodes: returns ")), "{line}\n{stderr}");
    assert!(line.contains("(mean "), "{line}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_config_files_env_chooses_the_preset_and_a_contradicting_env_flag_is_refused() {
    let path = std::env::temp_dir().join(format!("lookahead-envfile-{}.toml", std::process::id()));
    std::fs::write(&path, "env = \"pendulum\"\n").unwrap();
    let out = bin().args(["config", "print", "--config"]).arg(&path).output().expect("runs");
    assert!(out.status.success(), "{}", out_text(&out));
    // The pendulum preset (horizon 30), not cartpole's settings under a pendulum label.
    assert!(out_text(&out).contains("horizon = 30"), "{}", out_text(&out));
    let out = bin().args(["config", "print", "--env", "cartpole", "--config"]).arg(&path).output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(out_text(&out).contains("--env says \"cartpole\", the config says \"pendulum\""), "{}", out_text(&out));
    // `--set env=` chooses the preset the same way.
    let out = bin().args(["config", "print", "--set", "env=pendulum"]).output().expect("runs");
    assert!(out_text(&out).contains("horizon = 30"), "{}", out_text(&out));
    std::fs::remove_file(&path).ok();
}

#[test]
fn an_unmatched_adapter_name_lists_every_adapter_and_suggests_choosing_not_installing() {
    let out = bin().args(["--adapter", "no-such-gpu-name", "mpc", "--env", "pendulum"]).output().expect("runs");
    let text = out_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("vulkan") && text.contains("--adapter"), "{text}");
    assert!(!text.contains("apt-get"), "lavapipe is installed; the hint should not say to install it: {text}");
}

/// Crash consistency: a small PETS run killed with SIGKILL at 20 instants, each followed by
/// `--resume` (or a fresh start when it was killed before its first consistent point), ends with
/// exactly the trials, returns and transitions of a run that was never killed.
#[test]
fn a_run_killed_twenty_times_and_resumed_ends_as_an_uninterrupted_one() {
    let base = std::env::temp_dir().join(format!("lookahead-soak-{}", std::process::id()));
    std::fs::remove_dir_all(&base).ok();
    let sets = [
        "loop.trials=6",
        "loop.trial_length=30",
        "loop.initial_exploration_steps=30",
        "loop.freq_train_model=20",
        "model.hidden=[16]",
        "train.epochs=3",
        "planner.population=20",
        "planner.particles=2",
        "planner.horizon=5",
    ];
    let command = |dir: &std::path::Path, mode: &str| {
        let mut c = bin();
        c.args(["pets", "--env", "pendulum", "--preset", "demo", mode, "--out"]).arg(dir);
        for s in sets {
            c.args(["--set", s]);
        }
        c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        c
    };
    let straight = base.join("straight");
    assert!(command(&straight, "--overwrite").status().unwrap().success());
    let killed = base.join("killed");
    let mut kills = 0;
    let mut state = 12345u64;
    while kills < 20 {
        let mode = if killed.join("resume.json").exists() { "--resume" } else { "--overwrite" };
        let mut child = command(&killed, mode).spawn().expect("starts");
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis(30 + (state >> 33) % 900));
        if child.try_wait().unwrap().is_some() {
            // It finished before the kill: start it over to keep killing.
            std::fs::remove_dir_all(&killed).ok();
            continue;
        }
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        kills += 1;
    }
    let mode = if killed.join("resume.json").exists() { "--resume" } else { "--overwrite" };
    assert!(command(&killed, mode).status().unwrap().success(), "the final resume failed");
    let results = |d: &std::path::Path| std::fs::read_to_string(d.join("results.csv")).unwrap();
    let rows =
        |text: String| text.lines().map(|l| l.split(',').take(3).collect::<Vec<_>>().join(",")).collect::<Vec<_>>();
    assert_eq!(rows(results(&killed)), rows(results(&straight)), "trials, steps and returns differ after 20 kills");
    let buffer = |d: &std::path::Path| lookahead::pets::saved_transitions(d, 3, 1).unwrap();
    assert_eq!(buffer(&killed), buffer(&straight), "the stored transitions differ after 20 kills");
    for line in std::fs::read_to_string(killed.join("metrics.jsonl")).unwrap().lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("every metrics line is complete JSON");
    }
    std::fs::remove_dir_all(&base).ok();
}

#[test]
fn verify_quick_passes_prints_every_family_and_writes_its_report() {
    let path = std::env::temp_dir().join(format!("lookahead-verify-{}.json", std::process::id()));
    let out = bin().args(["verify", "--quick", "--json"]).arg(&path).output().expect("runs");
    let text = out_text(&out);
    assert!(out.status.success(), "{text}");
    for family in lookahead::verify::FAMILIES {
        assert!(text.lines().any(|l| l.starts_with(family) && l.ends_with("pass")), "{family} in {text}");
    }
    assert!(text.contains("0 failed"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let a = &v["adapters"][0];
    assert!(a["adapter"]["name"].is_string() && a["adapter"]["driver"].is_string());
    assert!(a["limits"]["max_compute_workgroup_storage_size"].as_u64().is_some());
    let results = a["results"].as_array().unwrap();
    assert_eq!(results.len(), 29);
    for r in results {
        assert_eq!(r["passed"], true, "{r}");
        assert!(r["values"].as_u64().unwrap() > 0, "{r}");
    }
    std::fs::remove_file(&path).ok();
    // The report path is checked before any work.
    let out = bin().args(["verify", "--quick", "--json", "/nonexistent-dir/r.json"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(2), "{}", out_text(&out));
}

/// `mpc --set`: every problem at once, and settings of a learned ensemble refused (the true
/// dynamics plan one particle per candidate; `particles=3` was accepted and ignored).
#[test]
fn mpc_reports_every_bad_setting_and_refuses_ensemble_settings() {
    let out = bin()
        .args(["mpc", "--env", "pendulum", "--set", "popultion=3", "--set", "horizn=2", "--set", "kind=foo"])
        .output()
        .expect("runs");
    let text = out_text(&out);
    assert!(!out.status.success());
    for key in ["planner.popultion", "planner.horizn", "planner.kind"] {
        assert!(text.contains(key), "{key} missing from: {text}");
    }
    for set in ["particles=3", "planner.propagation=tsinf"] {
        let out = bin().args(["mpc", "--env", "pendulum", "--set", set]).output().expect("runs");
        assert!(!out.status.success() && out_text(&out).contains("true dynamics"), "{set}: {}", out_text(&out));
    }
}

/// A misspelt backend or check policy is refused by every command, also those that open no GPU.
#[test]
fn unknown_backends_and_check_policies_are_refused_by_every_command() {
    for args in [["envs", "--backend", "vulcan"], ["envs", "--shader-checks", "none"]] {
        let out = bin().args(args).output().expect("runs");
        assert!(!out.status.success() && out_text(&out).contains("possible values"), "{args:?}: {}", out_text(&out));
    }
}

/// One writer per run folder: while a run holds its folder, a second `--overwrite` and a
/// `--resume` are refused at once, naming the holder's PID, and leave its files alone; once the
/// holder is killed (the OS drops its lock), the folder can be taken again.
#[test]
fn a_second_writer_of_a_run_folder_is_refused_until_the_first_is_gone() {
    let dir = std::env::temp_dir().join(format!("lookahead-lock-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let command = |mode: &str, trials: &str| {
        let mut c = bin();
        c.args(["pets", "--env", "pendulum", "--preset", "demo", mode, "--out"]).arg(&dir);
        for s in ["loop.initial_exploration_steps=30", "loop.trial_length=30", "model.hidden=[16]", "train.epochs=3"] {
            c.args(["--set", s]);
        }
        c.args(["--set", trials, "--set", "planner.population=20", "--set", "planner.horizon=5"]);
        c
    };
    let mut first = command("--overwrite", "loop.trials=200")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starts");
    let started = Instant::now();
    while !dir.join("resume.json").exists() {
        assert!(first.try_wait().unwrap().is_none(), "the first run ended early");
        assert!(started.elapsed() < Duration::from_secs(300), "the first run wrote no resume point");
        std::thread::sleep(Duration::from_millis(50));
    }
    let config = std::fs::read(dir.join("config.toml")).unwrap();
    for mode in ["--overwrite", "--resume"] {
        let t0 = Instant::now();
        let mut second = command(mode, "loop.trials=200")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("starts");
        // Refused at once: a writer still running after a minute was let in.
        while second.try_wait().unwrap().is_none() {
            if t0.elapsed() > Duration::from_secs(60) {
                second.kill().ok();
                first.kill().ok();
                panic!("{mode}: a second writer of a locked folder was not refused");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = second.wait_with_output().expect("ends");
        let text = out_text(&out);
        assert_eq!(out.status.code(), Some(2), "{mode}: {text}");
        assert!(text.contains("is in use by a run of process") && text.contains(&first.id().to_string()), "{text}");
    }
    assert_eq!(std::fs::read(dir.join("config.toml")).unwrap(), config, "a refused writer changed the run");
    first.kill().expect("SIGKILL");
    first.wait().unwrap();
    let out = command("--overwrite", "loop.trials=1").output().expect("runs");
    assert!(out.status.success(), "after the holder died: {}", out_text(&out));
    std::fs::remove_dir_all(&dir).ok();
}

/// `lookahead distill` refuses, with status 2 and one line each, what it cannot distil: a folder
/// without a PETS run, a known model without a folder to write to, an unknown environment, both
/// sources at once, and bad keys (all of them); then distils the known cartpole model for one
/// iteration, printing its line. Catches the command's sources or flags not reaching the loop.
#[test]
fn distill_refuses_what_it_cannot_distil_and_distils_a_known_model() {
    let base = std::env::temp_dir().join(format!("lookahead-cli-distill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(base.join("empty")).unwrap();
    let empty = base.join("empty").display().to_string();
    let out = base.join("out").display().to_string();
    for (args, expect) in [
        (vec!["--run", empty.as_str()], vec!["holds no PETS run"]),
        (vec!["--mpc", "pendulum"], vec!["--mpc needs --out"]),
        (vec!["--mpc", "acrobot", "--out", out.as_str()], vec!["unknown environment"]),
        (vec!["--run", empty.as_str(), "--mpc", "pendulum"], vec!["cannot be used with"]),
        (
            vec!["--mpc", "cartpole", "--out", out.as_str(), "--set", "train.lr=0", "--set", "dagger.x=1"],
            vec!["train.lr", "dagger.x"],
        ),
    ] {
        let o = bin().arg("distill").args(&args).output().expect("runs");
        let text = out_text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {text}");
        assert!(expect.iter().all(|e| text.contains(e)) && !text.contains("panicked"), "{args:?}: {text}");
    }
    let sets = ["dagger.iterations=0", "dagger.episodes=1", "dagger.eval_episodes=1", "train.updates_per_iteration=50"];
    let mut cmd = bin();
    cmd.args(["distill", "--mpc", "cartpole", "--out", out.as_str()]);
    for s in sets {
        cmd.args(["--set", s]);
    }
    let o = cmd.output().expect("runs");
    let text = out_text(&o);
    assert!(o.status.success() && text.contains("iteration 0: policy"), "{text}");
    assert!(base.join("out").join("policy.safetensors").is_file());
    let _ = std::fs::remove_dir_all(&base);
}
