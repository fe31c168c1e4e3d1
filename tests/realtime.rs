//! Real-time planning: the planner thread and bad budgets or observations (the timing test is
//! in realtime_budget.rs).

mod common;

use std::time::{Duration, Instant};

use lookahead::env::EnvKind;
use lookahead::error::PlannerStop;
use lookahead::planner::{AsyncPlanner, Budget, Dynamics, Planner, PlannerConfig};
use lookahead::Error;

fn pendulum_planner(ctx: &lookahead::gpu::GpuContext, iterations: usize) -> Planner {
    let cfg =
        PlannerConfig { horizon: 30, population: 300, iterations, particles: 1, seed: 5, ..PlannerConfig::default() };
    Planner::new(ctx, EnvKind::Pendulum.task(), Dynamics::Analytic, cfg).expect("planner")
}

gpu_test!(the_planner_thread_plans_from_the_newest_state_and_reports_its_death, |ctx| {
    let mut planner = pendulum_planner(ctx, 5);
    planner.warm_up(&[1.0, 0.0, 0.0]).expect("warm-up");
    assert!(matches!(AsyncPlanner::spawn(pendulum_planner(ctx, 5), Duration::ZERO), Err(Error::InvalidInput(_))));
    let agent = AsyncPlanner::spawn(planner, Duration::from_millis(30)).expect("spawn");
    assert_eq!(agent.action().unwrap(), None);
    agent.set_state(&[-1.0, 0.0, 0.0]).unwrap();
    let t0 = Instant::now();
    while agent.action().unwrap().is_none() {
        assert!(t0.elapsed() < Duration::from_secs(10), "no plan within 10 s");
        std::thread::sleep(Duration::from_millis(2));
    }
    let a = agent.action().unwrap().unwrap();
    assert!(a.len() == 1 && a[0].abs() <= 2.0);
    assert!(agent.set_state(&[f32::NAN, 0.0, 0.0]).unwrap_err().to_string().contains("non-finite"));
    // A state the planner cannot use stops the thread; the loop gets an error, never a hang.
    agent.set_state(&[1.0]).unwrap();
    let t0 = Instant::now();
    loop {
        match agent.action() {
            Err(Error::PlannerStopped(PlannerStop::Failed(cause))) => {
                assert!(matches!(*cause, Error::InvalidInput(_)), "{cause}");
                assert!(cause.to_string().contains("expects 3"), "{cause}");
                break;
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => {
                assert!(t0.elapsed() < Duration::from_secs(10), "the thread did not report its failure");
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
    assert!(matches!(agent.set_state(&[1.0, 0.0, 0.0]), Err(Error::PlannerStopped(_))));
    agent.stop().unwrap();
});

gpu_test!(bad_budgets_and_observations_are_errors, |ctx| {
    let mut planner = pendulum_planner(ctx, 3);
    let obs = [1.0f32, 0.0, 0.0];
    let zero_time = planner.plan_with(&obs, Budget::Time(Duration::ZERO)).unwrap_err();
    assert!(matches!(&zero_time, Error::InvalidInput(m) if m.contains("zero time")), "{zero_time}");
    let zero_its = planner.plan_with(&obs, Budget::Iterations(0)).unwrap_err();
    assert!(matches!(&zero_its, Error::InvalidInput(m) if m.contains("0 iterations")), "{zero_its}");
    let past = Instant::now();
    std::thread::sleep(Duration::from_millis(1));
    assert!(planner.plan_with(&obs, Budget::Deadline(past)).unwrap_err().to_string().contains("passed"));
    let nan = planner.plan_with(&[f32::NAN, 0.0, 0.0], Budget::Iterations(1)).unwrap_err();
    assert!(matches!(&nan, Error::InvalidInput(m) if m.contains("non-finite")), "{nan}");
    let out = planner.plan_with(&obs, Budget::Iterations(2)).expect("still plans");
    assert_eq!(out.iterations_done, 2);
});

gpu_test!(a_late_plan_falls_back_to_the_policy_and_is_counted, |ctx| {
    let mut planner = pendulum_planner(ctx, 5);
    planner.warm_up(&[1.0, 0.0, 0.0]).expect("warm-up");
    let agent = AsyncPlanner::spawn(planner, Duration::from_millis(30)).expect("spawn");
    // A fallback whose action marks it (a planned action differs from it).
    let policy = |obs: &[f32]| -> lookahead::Result<Vec<f32>> { Ok(vec![0.5 + 0.0 * obs[0]]) };
    let e = agent.action_or(0, policy).unwrap_err().to_string();
    assert!(e.contains("set_state"), "{e}");
    agent.set_state(&[1.0, 0.0, 0.0]).unwrap();
    // No plan yet: the fallback's action for the newest state.
    assert_eq!(agent.action_or(0, policy).unwrap(), (vec![0.5], true));
    let t0 = Instant::now();
    while agent.plans().unwrap() == 0 {
        assert!(t0.elapsed() < Duration::from_secs(10), "no plan within 10 s");
        std::thread::sleep(Duration::from_millis(2));
    }
    // A plan from the newest state: the planner's.
    let (planned, fell) = agent.action_or(0, policy).unwrap();
    assert!(!fell && planned == agent.action().unwrap().unwrap(), "{planned:?}");
    // A newer state, not planned yet: too old at lag 0, the planner's at lag 1.
    agent.set_state(&[0.9, 0.1, 0.0]).unwrap();
    assert!(agent.action_or(0, policy).unwrap().1, "a plan of the previous state at lag 0");
    assert!(!agent.action_or(1, policy).unwrap().1, "a plan of the previous state at lag 1");
    let count = agent.fallback_count().unwrap();
    assert_eq!((count.actions, count.fallbacks), (4, 2));
    agent.stop().unwrap();
});
