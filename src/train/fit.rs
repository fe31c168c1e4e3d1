//! One training call ([`Trainer::train`]): the split, the normaliser and the dataset's upload;
//! the scoring epoch, the bootstrap resamples and the training epoch; the epoch loop with
//! scoring and early stopping; then the best parameters restored and the elites chosen.

use std::time::Instant;

use rand::seq::SliceRandom;
use rand::Rng;

use super::epoch::Epoch;
use super::{input_statistics, read_u32s, ReplayBuffer, TrainReport, Trainer};
use crate::error::{Error, Result};

/// Early stopping's state: every member's best score, epochs since the last improvement and
/// whether any epoch improved (the best buffer then holds the parameters to restore).
struct EarlyStopping {
    best: Vec<f64>,
    since_improvement: usize,
    improved_once: bool,
}

impl EarlyStopping {
    fn new(best: Vec<f64>) -> Self {
        Self { best, since_improvement: 0, improved_once: false }
    }

    /// Whether `scores` improve on the best by more than `threshold` (relative) for any
    /// member; an improvement lowers each member's best to its score.
    fn record(&mut self, scores: &[f64], threshold: f64) -> bool {
        let improved = scores.iter().zip(&self.best).any(|(s, b)| (b - s) / b.abs().max(f64::MIN_POSITIVE) > threshold);
        if improved {
            for (b, s) in self.best.iter_mut().zip(scores) {
                *b = b.min(*s);
            }
            self.since_improvement = 0;
            self.improved_once = true;
        } else {
            self.since_improvement += 1;
        }
        improved
    }
}

impl Trainer {
    /// Trains on `buffer` (normaliser from the training part, bootstrap per member, epochs with
    /// early stopping); keeps the best weights seen and selects the elites. Interrupted before
    /// the first scoring ends, it changes neither the parameters, the normaliser nor the elites.
    pub fn train(&mut self, buffer: &ReplayBuffer) -> Result<TrainReport> {
        self.check_buffer(buffer)?;
        self.check_transitions(buffer.len(), "train on fewer transitions")?;
        let (val_rows, train_rows) = self.split(buffer.len())?;
        let normaliser = (self.ensemble.input_mean.clone(), self.ensemble.input_std.clone());
        let dataset = self.upload_dataset(buffer, &train_rows)?;
        // Scoring: every member sees the same rows (the training rows when none are held out).
        let eval_rows = if val_rows.is_empty() { train_rows.clone() } else { val_rows };
        let eval = self.scoring_epoch(&dataset, &eval_rows)?;
        let members = self.bootstrap(&train_rows);
        let train_ep = self.make_epoch(&dataset, self.steps_for(train_rows.len()), 0)?;
        let _ = train_ep.stats_len;
        let mut report = TrainReport {
            epochs: 0,
            interrupted: false,
            train_loss: Vec::new(),
            val_mse: Vec::new(),
            best_mse: Vec::new(),
            elites: Vec::new(),
            skipped_steps: 0,
            epoch_seconds: Vec::new(),
            n_train: train_rows.len(),
            n_eval: eval_rows.len(),
        };
        match self.run_epochs(&train_ep, &eval, &members, &mut report)? {
            Some(stopping) => self.restore_best(stopping, &mut report)?,
            None => {
                // Nothing was trained: the previous normaliser goes with the untouched weights.
                (self.ensemble.input_mean, self.ensemble.input_std) = normaliser;
                report.elites = self.elites.clone();
            }
        }
        Ok(report)
    }

    /// Refuses a buffer of another task's sizes, or an empty one.
    fn check_buffer(&self, buffer: &ReplayBuffer) -> Result<()> {
        let spec = &self.ensemble.spec;
        if buffer.obs_dim() != spec.obs_dim || buffer.act_dim() != spec.act_dim {
            return Err(Error::InvalidInput(format!(
                "the buffer holds obs {} / act {}, the model expects obs {} / act {}",
                buffer.obs_dim(),
                buffer.act_dim(),
                spec.obs_dim,
                spec.act_dim
            )));
        }
        if buffer.is_empty() {
            return Err(Error::InvalidInput("cannot train on an empty replay buffer".into()));
        }
        Ok(())
    }

    /// Checks, before anything is built, that a training call on `n` transitions fits the
    /// device: the dataset (every transition's inputs and targets) and an epoch's minibatch
    /// indices as storage buffers, the epoch's step parameters and their u32 offsets, and the
    /// rows' u32 indices. `hint` says what to lower.
    pub fn check_transitions(&self, n: usize, hint: &'static str) -> Result<()> {
        let s = &self.ensemble.spec;
        let (e, b, n) = (s.n_members as u64, self.cfg.batch_size as u64, n as u64);
        let steps = n.div_ceil(b);
        let over = |what: String, requested: u64, limit: &'static str, max: u64| {
            Err(Error::LimitExceeded { what, requested, limit, max, hint })
        };
        if n > u32::MAX as u64 {
            return over(format!("{n} transitions (rows are indexed in u32)"), n, "u32 index range", u32::MAX as u64);
        }
        let row = (s.in_dim() + s.model_out()) as u64 * 4;
        let data = format!("training data of {n} transitions (× (inputs + targets) × 4 B)");
        self.ctx.check_buffer_size(&data, n * row, true, hint)?;
        let indices = format!("minibatch indices of {n} transitions (steps × members × batch × 4 B)");
        self.ctx.check_buffer_size(&indices, (steps * b).saturating_mul(e * 4), true, hint)?;
        let params = steps.saturating_mul(self.params_stride);
        let what = format!("minibatch step parameters of {n} transitions (steps × {} B)", self.params_stride);
        self.ctx.check_buffer_size(&what, params, false, hint)?;
        if params > u32::MAX as u64 {
            return over(what, params, "u32 dynamic offsets", u32::MAX as u64);
        }
        Ok(())
    }

    /// Shuffles the `n` transitions and splits them: (validation rows, training rows).
    fn split(&mut self, n: usize) -> Result<(Vec<usize>, Vec<usize>)> {
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut self.rng);
        let n_val = (n as f64 * self.cfg.validation_ratio) as usize;
        let (val_rows, train_rows) = order.split_at(n_val);
        if train_rows.is_empty() {
            return Err(Error::InvalidInput(format!(
                "validation_ratio {} leaves no training data",
                self.cfg.validation_ratio
            )));
        }
        Ok((val_rows.to_vec(), train_rows.to_vec()))
    }

    /// Sets the normaliser from `train_rows` and uploads every transition once: its normalised
    /// input, then its target.
    fn upload_dataset(&mut self, buffer: &ReplayBuffer, train_rows: &[usize]) -> Result<wgpu::Buffer> {
        let spec = &self.ensemble.spec;
        let (mean, std) = input_statistics(buffer, train_rows);
        let (in_dim, mo) = (spec.in_dim(), spec.model_out());
        let mut data = Vec::with_capacity(buffer.len() * (in_dim + mo));
        for i in 0..buffer.len() {
            data.extend(buffer.input(i).iter().enumerate().map(|(k, v)| (v - mean[k]) / std[k]));
            data.extend(buffer.target(i, spec.learned_reward));
        }
        self.ensemble.input_mean = mean;
        self.ensemble.input_std = std;
        self.ctx.scoped("training data", || self.ctx.storage_buffer_init("train.dataset", &data))
    }

    /// The valid rows of each minibatch step over `rows` rows.
    fn steps_for(&self, rows: usize) -> Vec<u32> {
        let b = self.cfg.batch_size;
        (0..rows.div_ceil(b)).map(|s| (rows - s * b).min(b) as u32).collect()
    }

    /// The scoring epoch over `eval_rows`, every member on the same rows.
    fn scoring_epoch(&self, dataset: &wgpu::Buffer, eval_rows: &[usize]) -> Result<Epoch> {
        let (e, b) = (self.ensemble.spec.n_members, self.cfg.batch_size);
        let eval = self.make_epoch(dataset, self.steps_for(eval_rows.len()), 1)?;
        let mut eval_idx = vec![0u32; eval.n_steps * e * b];
        for (s, chunk) in eval_rows.chunks(b).enumerate() {
            for m in 0..e {
                for (r, row) in chunk.iter().enumerate() {
                    eval_idx[(s * e + m) * b + r] = *row as u32;
                }
            }
        }
        self.ctx.queue.write_buffer(&eval.indices, 0, bytemuck::cast_slice(&eval_idx));
        Ok(eval)
    }

    /// Each member's rows: a bootstrap resample (with replacement) of `train_rows`, or all of
    /// them without `bootstrap`.
    fn bootstrap(&mut self, train_rows: &[usize]) -> Vec<Vec<usize>> {
        (0..self.ensemble.spec.n_members)
            .map(|_| {
                if self.cfg.bootstrap {
                    (0..train_rows.len()).map(|_| train_rows[self.rng.random_range(0..train_rows.len())]).collect()
                } else {
                    train_rows.to_vec()
                }
            })
            .collect()
    }

    /// The epoch loop: freshly shuffled minibatches, the training submissions, the epoch's
    /// loss and scores; an improvement keeps the parameters, patience or the interrupt flag
    /// ends it (`None`: interrupted before the first scores, so nothing was trained). An error
    /// when the non-finite steps exceed their limit or no step was applied.
    fn run_epochs(
        &mut self,
        train_ep: &Epoch,
        eval: &Epoch,
        members: &[Vec<usize>],
        report: &mut TrainReport,
    ) -> Result<Option<EarlyStopping>> {
        let Some(first) = self.member_scores(eval)? else {
            report.interrupted = true;
            return Ok(None);
        };
        let mut stopping = EarlyStopping::new(first);
        // Runs of skipped steps are counted within this call.
        let c = read_u32s(&self.ctx, &self.net.counters, 4)?;
        let skipped_before = c[2];
        self.ctx.queue.write_buffer(&self.net.counters, 0, bytemuck::cast_slice(&[c[0], 0, c[2], 0]));
        let mut steps_run = 0usize;
        for _epoch in 0..self.cfg.epochs {
            if self.interrupted() {
                report.interrupted = true;
                break;
            }
            self.write_minibatches(train_ep, members, report.n_train);
            let t0 = Instant::now();
            self.run_steps(train_ep, false)?;
            report.epoch_seconds.push(t0.elapsed().as_secs_f64());
            report.epochs += 1;
            report.skipped_steps = self.skipped_steps(skipped_before)?;
            steps_run += train_ep.n_steps;
            report.train_loss.push(self.mean_loss(train_ep)?);
            // Interrupted during the epoch or its scoring: the epoch's weights are not scored.
            let Some(scores) = self.member_scores(eval)? else {
                report.interrupted = true;
                break;
            };
            if stopping.record(&scores, self.cfg.improvement_threshold) {
                self.copy_params(true);
            }
            report.val_mse.push(scores);
            if self.cfg.patience > 0 && stopping.since_improvement >= self.cfg.patience {
                break;
            }
        }
        // Fewer than max_nonfinite_steps in a row, but not one step applied: the call trained
        // nothing (the weights are unchanged), which a report would hide behind infinite scores.
        if !report.interrupted && steps_run > 0 && report.skipped_steps as usize >= steps_run {
            return Err(Error::Training(format!(
                "every one of the {steps_run} minibatch steps had a non-finite gradient, so nothing was trained \
                 (the weights are unchanged); check the data for extreme values or lower train.lr"
            )));
        }
        Ok(Some(stopping))
    }

    /// Writes an epoch's minibatch indices: the `n_train` positions shuffled afresh, each
    /// member's rows at them.
    fn write_minibatches(&mut self, train_ep: &Epoch, members: &[Vec<usize>], n_train: usize) {
        let (e, b) = (self.ensemble.spec.n_members, self.cfg.batch_size);
        let mut positions: Vec<usize> = (0..n_train).collect();
        positions.shuffle(&mut self.rng);
        let mut idx = vec![0u32; train_ep.n_steps * e * b];
        for (s, chunk) in positions.chunks(b).enumerate() {
            for (m, rows) in members.iter().enumerate() {
                for (r, p) in chunk.iter().enumerate() {
                    idx[(s * e + m) * b + r] = rows[*p] as u32;
                }
            }
        }
        self.ctx.queue.write_buffer(&train_ep.indices, 0, bytemuck::cast_slice(&idx));
    }

    /// Steps skipped for a non-finite gradient since `skipped_before`; an error when the
    /// last run of them reached `max_nonfinite_steps`.
    fn skipped_steps(&self, skipped_before: u32) -> Result<u32> {
        let counters = read_u32s(&self.ctx, &self.net.counters, 4)?;
        if counters[3] >= self.cfg.max_nonfinite_steps {
            return Err(Error::Training(format!(
                "{} consecutive minibatch steps had a non-finite gradient (limit train.max_nonfinite_steps = {}); \
                 check the data for extreme values or lower train.lr",
                counters[3], self.cfg.max_nonfinite_steps
            )));
        }
        Ok(counters[2] - skipped_before)
    }

    /// The mean of the finite losses of `train_ep`'s steps and members.
    fn mean_loss(&self, train_ep: &Epoch) -> Result<f64> {
        let e = self.ensemble.spec.n_members;
        let losses = self.ctx.read_buffer::<f32>(&train_ep.stats, train_ep.n_steps * e)?;
        let finite: Vec<f64> = losses.iter().filter(|v| v.is_finite()).map(|v| *v as f64).collect();
        Ok(finite.iter().sum::<f64>() / finite.len().max(1) as f64)
    }

    /// Copies the parameters to the best buffer (`to_best`) or back.
    fn copy_params(&self, to_best: bool) {
        let (src, dst) = if to_best { (&self.net.params, &self.net.best) } else { (&self.net.best, &self.net.params) };
        let mut enc = self.ctx.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(src, 0, dst, 0, Some(self.layout.len as u64 * 4));
        self.ctx.queue.submit(Some(enc.finish()));
    }

    /// Restores the best parameters seen (where an epoch improved) and chooses the elites:
    /// the members with the lowest best scores.
    fn restore_best(&mut self, stopping: EarlyStopping, report: &mut TrainReport) -> Result<()> {
        let EarlyStopping { best, improved_once, .. } = stopping;
        if improved_once {
            self.copy_params(false);
        }
        let mut ranked: Vec<usize> = (0..self.ensemble.spec.n_members).collect();
        ranked.sort_by(|a, b| best[*a].total_cmp(&best[*b]));
        self.elites = ranked[..self.cfg.num_elites].to_vec();
        report.best_mse = best;
        report.elites = self.elites.clone();
        self.ctx.check()
    }
}
