//! The examples run, end to end, and say what they should (cargo builds them for `cargo test`).

use std::path::PathBuf;
use std::process::Command;

/// `target/<profile>/examples/<name>`, beside this test's `deps` folder.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps");
    let path = profile.join("examples").join(name);
    assert!(path.exists(), "{} was not built; cargo test builds the examples", path.display());
    path
}

fn run(name: &str) -> String {
    let out = Command::new(example(name)).output().expect("the example starts");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{name} failed: {text}");
    assert!(!text.contains("panicked"), "{name}: {text}");
    text
}

#[test]
fn plan_once_prints_a_plan() {
    let text = run("plan_once");
    assert!(text.contains("predicted return"), "{text}");
}

#[test]
fn cartpole_mpc_keeps_the_pole_up_with_the_true_dynamics() {
    let text = run("cartpole_mpc");
    assert!(text.contains("true-dynamics MPC return: 200"), "{text}");
}

#[test]
fn realtime_mpc_runs_its_control_loop() {
    let text = run("realtime_mpc");
    assert!(text.contains("200 steps") && text.contains("Hz"), "{text}");
}

#[test]
fn custom_env_runs_pets_on_a_user_task() {
    let text = run("custom_env");
    assert!(text.contains("trial 3"), "{text}");
}
