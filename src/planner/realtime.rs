//! Real-time planning: anytime CEM under a budget (iterations, a duration or a deadline) and
//! an asynchronous planner thread that keeps optimising while a control loop reads actions.
//!
//! Each CEM iteration is one submission with a small readback, so the planner can stop between
//! iterations. Before starting an iteration it predicts its cost from the iterations measured so
//! far (a smoothed wall time with a safety margin, as acados's timeout heuristic) and stops if
//! the prediction would cross the deadline. Every GPU wait is bounded by the time left. Which
//! iteration's plan is returned follows the planner's one rule (`return_best_iteration`, see
//! the `planner` module): with it, the best seen so far, so on a fixed random stream more
//! iterations never lower the predicted return; an iteration budget of the configured count
//! gives exactly the plan of [`Planner::plan`].

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Plan, Planner};
use crate::error::{Error, PlannerStop, Result};

/// How much a plan may spend.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Budget {
    /// At most this many CEM iterations (capped by the config's `iterations`).
    Iterations(usize),
    /// At most this long from the call.
    Time(Duration),
    /// Return by this instant.
    Deadline(Instant),
}

/// Why a plan stopped.
#[derive(Debug, Clone, PartialEq)]
pub enum PlanStatus {
    /// The sampling distribution collapsed (every standard deviation below 1e-3 of its range).
    Converged,
    /// All configured iterations ran.
    Complete,
    /// The budget stopped it (the plan is the best of the iterations that fitted).
    Budget,
    /// Something went wrong and the plan is a fallback; the reason says what.
    Degraded(String),
}

/// `converged`, `complete`, `budget` or `degraded: <reason>`.
impl std::fmt::Display for PlanStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanStatus::Converged => f.write_str("converged"),
            PlanStatus::Complete => f.write_str("complete"),
            PlanStatus::Budget => f.write_str("budget"),
            PlanStatus::Degraded(why) => write!(f, "degraded: {why}"),
        }
    }
}

/// A plan and how it was obtained.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanOutcome {
    /// The plan (for a batch: one per observation in [`PlanOutcome::batch`]).
    pub plan: Plan,
    /// Every plan of a batch call.
    pub batch: Vec<Plan>,
    /// CEM iterations completed.
    pub iterations_done: usize,
    /// The time budget ran out before all configured iterations (Time and Deadline budgets).
    pub timed_out: bool,
    /// Why it stopped.
    pub status: PlanStatus,
    /// Wall time of the call.
    pub elapsed: Duration,
}

/// Safety factor on the predicted cost of the next iteration.
const COST_MARGIN: f64 = 1.25;
/// Fixed allowance for the host side of an iteration (submission, readback, bookkeeping).
const HOST_ALLOWANCE: Duration = Duration::from_micros(300);
/// Smoothing of the measured iteration time.
const COST_SMOOTHING: f64 = 0.3;

impl Planner {
    /// Plans from one observation within `budget` (anytime CEM).
    pub fn plan_with(&mut self, obs: &[f32], budget: Budget) -> Result<PlanOutcome> {
        self.plan_batch_with(&[obs], budget)
    }

    /// Measures one CEM iteration from `obs` (without disturbing the warm start), so that the
    /// first budgeted plan can predict its cost. Call it before a control loop.
    pub fn warm_up(&mut self, obs: &[f32]) -> Result<Duration> {
        let warm = self.warm.snapshot();
        let call = self.call;
        let have_archive = self.have_archive;
        // The first submissions pay one-time costs (driver shader compilation, allocation):
        // measure the third iteration.
        for _ in 0..3 {
            self.iteration_time = None;
            self.plan_with(obs, Budget::Iterations(1))?;
        }
        // Restore the warm start and the random stream: the warm-up leaves no trace.
        self.call = call;
        self.have_archive = have_archive;
        if let Some(ws) = &self.ws {
            let init = if warm.is_empty() { self.warm.initial_mean(ws.n_batch) } else { warm };
            self.ctx.queue.write_buffer(&ws.mean, 0, bytemuck::cast_slice(&init));
            self.warm.restore(init);
        }
        self.iteration_time.ok_or_else(|| Error::Gpu("the warm-up iteration was not measured".into()))
    }

    /// The warm start as the plan, when the GPU cannot be used within the budget.
    fn fallback(&self, n_batch: usize, start: Instant, reason: &str) -> PlanOutcome {
        let (h, a) = (self.cfg.horizon, self.task.act_dim);
        let warm = self.warm.current(n_batch);
        let batch: Vec<Plan> = warm
            .chunks(h * a)
            .map(|actions| Plan {
                action: actions[..a].to_vec(),
                actions: actions.to_vec(),
                predicted_return: f32::NAN,
                best_return: f32::NAN,
                iterations: 0,
            })
            .collect();
        PlanOutcome {
            plan: batch[0].clone(),
            batch,
            iterations_done: 0,
            timed_out: true,
            status: PlanStatus::Degraded(format!("{reason}; the plan is the warm start")),
            elapsed: start.elapsed(),
        }
    }

    /// The predicted wall time of the next iteration.
    pub fn predicted_iteration_time(&self) -> Option<Duration> {
        self.iteration_time.map(|t| t.mul_f64(COST_MARGIN) + HOST_ALLOWANCE)
    }

    /// Plans for several observations within `budget`; see [`Planner::plan_with`].
    pub fn plan_batch_with<O: AsRef<[f32]>>(&mut self, observations: &[O], budget: Budget) -> Result<PlanOutcome> {
        let start = Instant::now();
        let (deadline, max_iters) = self.budget_limits(budget, start)?;
        let flat = self.flatten(observations)?;
        // A submission abandoned at an earlier deadline is settled within this one.
        if let Some(deadline) = deadline {
            if !self.settle_inflight(deadline.saturating_duration_since(Instant::now()))? {
                return Ok(self.fallback(observations.len(), start, "the previous plan's GPU work is still running"));
            }
        }
        let n_batch = self.prepare(&flat, observations.len())?;
        let warm = self.warm.current(n_batch);
        // One submission per iteration while the next fits; then the plans to return.
        let run = self.iterate(n_batch, deadline, max_iters)?;
        Ok(self.budgeted_outcome(run, &warm, deadline, start))
    }

    /// The deadline (none for an iteration budget or a duration too long to add to the clock)
    /// and the most iterations `budget` allows from `start`; an error for a budget that plans
    /// nothing.
    fn budget_limits(&self, budget: Budget, start: Instant) -> Result<(Option<Instant>, usize)> {
        Ok(match budget {
            Budget::Iterations(0) => return Err(Error::InvalidInput("a budget of 0 iterations plans nothing".into())),
            Budget::Iterations(n) => (None, n.min(self.cfg.effective_iterations())),
            Budget::Time(d) if d.is_zero() => {
                return Err(Error::InvalidInput("a budget of zero time plans nothing".into()))
            }
            // A budget too long to add to the clock is no deadline at all.
            Budget::Time(d) => (start.checked_add(d), self.cfg.effective_iterations()),
            Budget::Deadline(t) if t <= start => {
                return Err(Error::InvalidInput("the deadline has already passed".into()));
            }
            Budget::Deadline(t) => (Some(t), self.cfg.effective_iterations()),
        })
    }

    /// Runs up to `max_iters` iterations, one submission each, while the predicted cost of the
    /// next fits before `deadline`; a time budget also stops once the distribution has collapsed.
    fn iterate(&mut self, n_batch: usize, deadline: Option<Instant>, max_iters: usize) -> Result<BudgetedRun> {
        let len = n_batch * self.cfg.horizon * self.task.act_dim;
        let mut run = BudgetedRun::new(n_batch);
        let gpu_timeout = Duration::from_secs_f64(self.cfg.gpu_timeout_s);
        while run.done < max_iters {
            let Some(wait) = self.iteration_wait(deadline, gpu_timeout) else {
                run.status = PlanStatus::Budget;
                break;
            };
            let out = match self.run_iteration(n_batch, run.done, wait)? {
                Ok(out) => out,
                Err(waited) => {
                    // The iteration ran past the deadline: the best plan so far stands.
                    run.status = if run.done == 0 {
                        PlanStatus::Degraded(format!("the GPU did not finish the first iteration within {waited:?}"))
                    } else {
                        PlanStatus::Budget
                    };
                    break;
                }
            };
            run.done += 1;
            let (mean, rest) = out.split_at(len);
            let (stats, var) = rest.split_at(2 * n_batch);
            run.keep(mean, stats, self.cfg.horizon * self.task.act_dim);
            // An iteration budget is a count (so that it reproduces `plan`); only time budgets
            // also stop early once the distribution has collapsed.
            if deadline.is_some() && self.collapsed(var) {
                run.status = PlanStatus::Converged;
                break;
            }
        }
        if run.done < max_iters && run.status == PlanStatus::Complete {
            run.status = PlanStatus::Budget;
        }
        Ok(run)
    }

    /// How long the next iteration may wait on the GPU, or `None` when its predicted cost does
    /// not fit before `deadline` (or no time is left).
    fn iteration_wait(&self, deadline: Option<Instant>, gpu_timeout: Duration) -> Option<Duration> {
        let Some(deadline) = deadline else { return Some(gpu_timeout) };
        let left = deadline.saturating_duration_since(Instant::now());
        // Without a measurement yet (no warm-up), the first iteration runs, its wait bounded.
        let over = self.predicted_iteration_time().is_some_and(|p| p > left);
        if over || left.is_zero() {
            return None;
        }
        Some(gpu_timeout.min(left))
    }

    /// Submits iteration `it` and reads back (mean, plan statistics, variance) within `wait`,
    /// updating the measured iteration time; `Err(waited)` when the GPU did not finish in time
    /// (the submission is kept as in flight).
    fn run_iteration(
        &mut self,
        n_batch: usize,
        it: usize,
        wait: Duration,
    ) -> Result<std::result::Result<Vec<f32>, Duration>> {
        let len = n_batch * self.cfg.horizon * self.task.act_dim;
        let ws = self.ws.as_ref().expect("prepare built the workspace");
        let (encoder, profile) = self.encode(ws, it..it + 1, false, None);
        self.last_population = self.iteration_params(n_batch, it).population as usize;
        self.last_dispatches = profile.dispatches();
        let index = self.ctx.queue.submit(Some(encoder.finish()));
        let t0 = Instant::now();
        let out = match self.ctx.read_staging(&ws.staging, 2 * len + 2 * n_batch, Some(index.clone()), wait) {
            Ok(out) => out,
            Err(Error::Timeout { waited }) => {
                self.inflight = Some(index);
                return Ok(Err(waited));
            }
            Err(e) => return Err(e),
        };
        let took = t0.elapsed();
        self.iteration_time = Some(match self.iteration_time {
            Some(prev) => prev.mul_f64(1.0 - COST_SMOOTHING) + took.mul_f64(COST_SMOOTHING),
            None => took,
        });
        Ok(Ok(out))
    }

    /// Whether every standard deviation of `var` is below 1e-3 of its action's range.
    fn collapsed(&self, var: &[f32]) -> bool {
        let a = self.task.act_dim;
        var.iter().enumerate().all(|(i, v)| {
            let k = i % a;
            v.max(0.0).sqrt() < 1e-3 * (self.upper[k] - self.lower[k])
        })
    }

    /// Settles the call (the random stream advances; iCEM's archive holds elites once an
    /// iteration ran) and returns the plans `return_best_iteration` chooses, the warm start
    /// where no iteration ran; the next plan starts from them, shifted.
    fn budgeted_outcome(
        &mut self,
        run: BudgetedRun,
        warm: &[f32],
        deadline: Option<Instant>,
        start: Instant,
    ) -> PlanOutcome {
        let (h, a) = (self.cfg.horizon, self.task.act_dim);
        let BudgetedRun { best, last, done, mut status } = run;
        self.call = self.call.wrapping_add(1);
        if done > 0 {
            self.have_archive = self.cfg.kind == super::PlannerKind::Icem;
        }
        let timed_out =
            deadline.is_some() && done < self.cfg.effective_iterations() && !matches!(status, PlanStatus::Converged);
        let chosen = if self.cfg.return_best_iteration { best } else { last };
        let plans: Vec<Plan> = chosen
            .into_iter()
            .enumerate()
            .map(|(b, slot)| {
                let (value, top, actions) =
                    slot.unwrap_or_else(|| (f32::NAN, f32::NAN, warm[b * h * a..(b + 1) * h * a].to_vec()));
                Plan {
                    action: actions[..a].to_vec(),
                    actions,
                    predicted_return: value,
                    best_return: top,
                    iterations: done,
                }
            })
            .collect();
        if done == 0 && !matches!(status, PlanStatus::Degraded(_)) {
            status = PlanStatus::Degraded("no CEM iteration fitted the budget; the plan is the warm start".into());
        }
        // The next plan starts from the returned one, shifted.
        let returned: Vec<f32> = plans.iter().flat_map(|p| p.actions.iter().copied()).collect();
        let next = self.warm.advance(&returned);
        if self.inflight.is_none() {
            if let Some(ws) = &self.ws {
                self.ctx.queue.write_buffer(&ws.mean, 0, bytemuck::cast_slice(&next));
            }
        }
        PlanOutcome {
            plan: plans[0].clone(),
            batch: plans,
            iterations_done: done,
            timed_out,
            status,
            elapsed: start.elapsed(),
        }
    }
}

/// One iteration's result for one plan: (mean elite return, best return, sequence).
type IterationPlan = (f32, f32, Vec<f32>);

/// What the iterations of one budgeted call produced.
struct BudgetedRun {
    /// Per plan, the best iteration so far.
    best: Vec<Option<IterationPlan>>,
    /// Per plan, the last iteration.
    last: Vec<Option<IterationPlan>>,
    /// Iterations completed.
    done: usize,
    /// Why they stopped.
    status: PlanStatus,
}

impl BudgetedRun {
    fn new(n_batch: usize) -> Self {
        Self { best: vec![None; n_batch], last: vec![None; n_batch], done: 0, status: PlanStatus::Complete }
    }

    /// Keeps an iteration's readback (`mean`: `plan_len` values per plan; `stats`: two per
    /// plan) as every plan's last, and as its best where it beats the best so far (which is
    /// returned is `return_best_iteration`'s rule).
    fn keep(&mut self, mean: &[f32], stats: &[f32], plan_len: usize) {
        for (b, (slot, final_slot)) in self.best.iter_mut().zip(self.last.iter_mut()).enumerate() {
            let value = stats[2 * b];
            let this = (value, stats[2 * b + 1], mean[b * plan_len..(b + 1) * plan_len].to_vec());
            if slot.as_ref().is_none_or(|(v, _, _)| value > *v || !v.is_finite()) {
                *slot = Some(this.clone());
            }
            *final_slot = Some(this);
        }
    }
}

/// What the planner thread shares with the control loop.
#[derive(Default)]
struct Shared {
    state: Option<Vec<f32>>,
    /// States handed over so far (the newest one's number).
    states: u64,
    action: Option<Vec<f32>>,
    /// The number of the state the newest plan started from.
    planned_from: u64,
    last: Option<PlanOutcome>,
    failure: Option<PlannerStop>,
    stop: bool,
    plans: u64,
    /// Actions asked of [`AsyncPlanner::action_or`], and those its fallback gave.
    asked: u64,
    fallbacks: u64,
}

/// How often [`AsyncPlanner::action_or`] fell back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FallbackCount {
    /// Actions asked.
    pub actions: u64,
    /// Of those, the fallback's.
    pub fallbacks: u64,
}

/// A planner on its own thread: the control loop calls [`AsyncPlanner::set_state`] and
/// [`AsyncPlanner::action`] at its own rate; the thread plans from the newest state, each plan
/// within `budget`, as MuJoCo MPC's agent does. `action` never waits on the GPU.
pub struct AsyncPlanner {
    shared: Arc<(Mutex<Shared>, Condvar)>,
    handle: Option<JoinHandle<()>>,
}

impl AsyncPlanner {
    /// Starts the thread. The planner should be warmed up ([`Planner::warm_up`]).
    pub fn spawn(mut planner: Planner, budget: Duration) -> Result<Self> {
        if budget.is_zero() {
            return Err(Error::InvalidInput("the planning budget must be positive".into()));
        }
        let shared = Arc::new((Mutex::new(Shared::default()), Condvar::new()));
        let s = shared.clone();
        let handle = std::thread::Builder::new()
            .name("lookahead-planner".into())
            .spawn(move || {
                let (lock, cv) = &*s;
                loop {
                    let (state, number) = {
                        let Ok(mut g) = lock.lock() else { return };
                        while !g.stop && g.state.is_none() {
                            g = match cv.wait(g) {
                                Ok(g) => g,
                                Err(_) => return,
                            };
                        }
                        if g.stop {
                            return;
                        }
                        (g.state.clone().expect("checked above"), g.states)
                    };
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        match planner.plan_with(&state, Budget::Time(budget)) {
                            // Off the control loop's thread, lateness blocks nobody: when not even
                            // one iteration fits the budget, run one anyway rather than spin.
                            Ok(out) if out.iterations_done == 0 => planner.plan_with(&state, Budget::Iterations(1)),
                            other => other,
                        }
                    }));
                    let Ok(mut g) = lock.lock() else { return };
                    match result {
                        Ok(Ok(outcome)) => {
                            g.action = Some(outcome.plan.action.clone());
                            g.planned_from = number;
                            g.last = Some(outcome);
                            g.plans += 1;
                        }
                        Ok(Err(e)) => {
                            g.failure = Some(PlannerStop::Failed(Arc::new(e)));
                            return;
                        }
                        Err(_) => {
                            g.failure = Some(PlannerStop::Panicked);
                            return;
                        }
                    }
                }
            })
            .map_err(|e| Error::PlannerStopped(PlannerStop::Spawn(e.to_string())))?;
        Ok(Self { shared, handle: Some(handle) })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Shared) -> Result<T>) -> Result<T> {
        let (lock, cv) = &*self.shared;
        let mut g = lock.lock().map_err(|_| Error::PlannerStopped(PlannerStop::Poisoned))?;
        if let Some(reason) = &g.failure {
            return Err(Error::PlannerStopped(reason.clone()));
        }
        let out = f(&mut g);
        cv.notify_all();
        out
    }

    /// Hands the thread the newest observation (checked here: wrong size or NaN is an error).
    pub fn set_state(&self, obs: &[f32]) -> Result<()> {
        if let Some(i) = obs.iter().position(|v| !v.is_finite()) {
            return Err(Error::InvalidInput(format!("observation has a non-finite value {} at index {i}", obs[i])));
        }
        self.with(|g| {
            g.state = Some(obs.to_vec());
            g.states += 1;
            Ok(())
        })
    }

    /// The newest plan's first action when that plan started from one of the newest
    /// `max_lag + 1` states handed over (0: from the newest itself), else `fallback`'s action
    /// for the newest state (a policy distilled from the planner, acting in microseconds on the
    /// CPU), and whether it was the fallback's. Never waits on the GPU; the fallbacks are
    /// counted ([`AsyncPlanner::fallback_count`]). An error before any state was handed over.
    pub fn action_or(
        &self,
        max_lag: u64,
        fallback: impl FnOnce(&[f32]) -> Result<Vec<f32>>,
    ) -> Result<(Vec<f32>, bool)> {
        let (planned, state) = self.with(|g| {
            let Some(state) = g.state.clone() else {
                return Err(Error::InvalidInput("no state was handed over (set_state) before the action".into()));
            };
            g.asked += 1;
            let fresh = g.action.clone().filter(|_| g.planned_from + max_lag >= g.states);
            if fresh.is_none() {
                g.fallbacks += 1;
            }
            Ok((fresh, state))
        })?;
        match planned {
            Some(action) => Ok((action, false)),
            None => Ok((fallback(&state)?, true)),
        }
    }

    /// Actions asked of [`AsyncPlanner::action_or`] and how many were the fallback's.
    pub fn fallback_count(&self) -> Result<FallbackCount> {
        self.with(|g| Ok(FallbackCount { actions: g.asked, fallbacks: g.fallbacks }))
    }

    /// The first action of the newest plan, or `None` before the first plan; never waits on the GPU.
    pub fn action(&self) -> Result<Option<Vec<f32>>> {
        self.with(|g| Ok(g.action.clone()))
    }

    /// The newest plan's outcome.
    pub fn last_outcome(&self) -> Result<Option<PlanOutcome>> {
        self.with(|g| Ok(g.last.clone()))
    }

    /// Plans finished so far.
    pub fn plans(&self) -> Result<u64> {
        self.with(|g| Ok(g.plans))
    }

    /// Stops the thread and waits for it (at most one plan's budget plus the GPU timeout).
    pub fn stop(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        {
            let (lock, cv) = &*self.shared;
            if let Ok(mut g) = lock.lock() {
                g.stop = true;
            }
            cv.notify_all();
        }
        if let Some(h) = self.handle.take() {
            h.join().map_err(|_| Error::PlannerStopped(PlannerStop::Panicked))?;
        }
        Ok(())
    }
}

impl Drop for AsyncPlanner {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
