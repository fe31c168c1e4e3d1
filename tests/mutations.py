#!/usr/bin/env python3
"""Mutation check: applies each deliberate bug below to the working tree, runs the tests that
should catch it, records whether they failed, and restores the file. Evidence that the suite can
fail where it matters; rerun after changing tests or kernels:

    python3 tests/mutations.py            # all mutations (a few minutes on lavapipe)
    python3 tests/mutations.py adam       # those whose name contains "adam"

Exit status 1 if any mutation survives (its tests all pass). The mutations of the tensor-core
kernel (marked COOP16) run only where the adapter offers cooperative matrices; elsewhere they are
listed as not run. Those of the Python bindings (marked PYTHON) name pytest arguments instead:
the extension is built from the mutated tree and the package's tests run against it from a
temporary folder (the installed package is left alone)."""
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent

# What a mutation may need of the adapter beyond the portable kernels.
COOP16 = "coop16"
# A mutation of the Python bindings: its arguments are pytest's.
PYTHON = "python"

# (name, file, original text, mutated text, cargo test (or pytest) arguments that must fail
# [, COOP16 or PYTHON])
MUTATIONS = [
    ("cartpole angle limit 12.5 degrees", "shaders/env_cartpole.wgsl",
     "let theta_limit = 12.0 * 2.0", "let theta_limit = 12.5 * 2.0",
     ["--test", "planners", "every_kind_matches_its_reference_with_known_dynamics"]),
    ("adam first-moment bias correction frozen at t = 1", "shaders/adam.wgsl",
     "let m_hat = m / (1.0 - pow(train.beta1, t));", "let m_hat = m / (1.0 - pow(train.beta1, 1.0));",
     ["--test", "verify", "--", "--exact", "train.adam/five steps: parameters, both moments, step count"]),
    ("adam second moment never written", "shaders/adam.wgsl",
     "    moment2[i] = v;\n", "",
     ["--test", "verify", "--", "--exact", "train.adam/five steps: parameters, both moments, step count"]),
    ("TS-infinity redraws its member every step", "shaders/rollout.wgsl",
     "        sub = 0xffffu;", "        sub = params.t;",
     ["--test", "verify", "--", "plan.ensemble/tsinf"]),
    ("elite ties broken towards the higher index", "shaders/cem.wgsl",
     "(rj == r && j < c)", "(rj == r && j > c)",
     ["--test", "kernels_vs_cpu", "rank"]),
    ("last row tile of a member skipped", "src/kernels/mlp.rs",
     "let x = self.max_block_rows().div_ceil(TILE_M).max(1);", "let x = (self.max_block_rows() / TILE_M).max(1);",
     ["--test", "verify", "--", "mlp.tiled"]),
    ("tiled product: an invocation with rows past the end skips its rows before the end too", "shaders/tile.wgsl",
     "let live = p0 + lid.y * 4u < p_end && q0 + lid.x < q_end;", "let live = p0 + lid.y * 4u + 3u < p_end && q0 + lid.x < q_end;",
     ["--test", "verify", "--", "mlp.tiled"]),
    ("tiled product: an invocation with columns past the end skips its columns before the end too", "shaders/tile.wgsl",
     "let live = p0 + lid.y * 4u < p_end && q0 + lid.x < q_end;", "let live = p0 + lid.y * 4u < p_end && q0 + lid.x + 16u < q_end;",
     ["--test", "verify", "--", "mlp.tiled"]),
    ("backward_weights skips the partial input tile", "src/kernels/mlp.rs",
     "let p = self.in_dim.div_ceil(TILE_M).max(1) + u32::from(self.bias_grad_off > 0);",
     "let p = (self.in_dim / TILE_M).max(1) + u32::from(self.bias_grad_off > 0);",
     ["--test", "train", "gradients_over_several_and_partial_tiles"]),
    ("backward_weights' bias sums skip each member's first row", "shaders/mlp.wgsl",
     "for (var r = rows.x; r < rows.y; r = r + 1u) {\n                s = s + b_src[r * out_dim + q];",
     "for (var r = rows.x + 1u; r < rows.y; r = r + 1u) {\n                s = s + b_src[r * out_dim + q];",
     ["--test", "verify", "--", "train.loss"]),
    ("early stopping never restores the best weights", "src/train/fit.rs",
     "        if improved_once {", "        if false && improved_once {",
     ["--test", "train", "an_improve_then_degrade"]),
    ("MPPI smoothing ignores the previous action", "shaders/cem.wgsl",
     "(1.0 - params.beta) * prev;", "(1.0 - params.beta) * mu;",
     ["--test", "planners", "every_kind_matches_its_reference"]),
    ("iCEM keeps its archived elites unshifted into the next plan", "shaders/cem.wgsl",
     "actions[dst] = actions[row + (t + 1u) * na + a];", "actions[dst] = actions[row + t * na + a];",
     ["--test", "planners", "every_kind_matches_its_reference"]),
    ("fused kernel: the K remainder after the groups of 4 skipped", "shaders/mlp_fused.wgsl",
     "for (var k = k4; k < din; k = k + 1u) {", "for (var k = din; k < din; k = k + 1u) {",
     ["--test", "verify", "--", "mlp.fused"]),
    ("fused kernel: a run's partial column group skipped", "shaders/mlp_fused.wgsl",
     "return min(COLS, (dout - first + COL_RUN - 1u) / COL_RUN);", "return min(COLS, (dout - first) / COL_RUN);",
     ["--test", "verify", "--", "mlp.fused"]),
    ("fused layouts: workgroup memory counted at the even stride", "src/kernels/mlp_fused.rs",
     "    rows4 | 1\n", "    rows4\n",
     ["--test", "planner", "every_fused_layout_plans_exactly"]),
    ("fused kernel: the second row group reads the first group's rows", "shaders/mlp_fused.wgsl",
     "let q0 = li / lanes * rq;", "let q0 = 0u;",
     ["--test", "verify", "--", "mlp.fused"]),
    ("fused kernel: the last partial row block of a member skipped", "src/kernels/mlp_fused.rs",
     "let x = p.max_block_rows().div_ceil(rows).max(1);", "let x = (p.max_block_rows() / rows).max(1);",
     ["--test", "verify", "--", "mlp.fused"]),
    ("the fused forward pass leaves the second layer's weights untransposed", "shaders/mlp_fused_net.wgsl",
     "for (var l = 1u; l < net.n_layers; l = l + 1u) {", "for (var l = 2u; l < net.n_layers; l = l + 1u) {",
     ["--test", "train", "gradients_over_several_and_partial_tiles"]),
    ("the fused forward pass: every workgroup transposes only the first share", "shaders/mlp_fused_net.wgsl",
     "for (var e = wg.x * FUSED_WG + li; e < n;", "for (var e = li; e < n;",
     ["--test", "train", "gradients_over_several_and_partial_tiles"]),
    ("fused training forward stores the activations as pre-activations", "shaders/mlp_fused.wgsl",
     "hidden_write(el(pre0, r0 + r, dout, c), v[e]);", "hidden_write(el(pre0, r0 + r, dout, c), s[e]);",
     ["--test", "train", "training_through_the_fused_kernels"]),
    ("fused training forward never writes the hidden activations", "shaders/mlp_fused.wgsl",
     "                                        hidden_write(el(act0, r0 + r, dout, c), s[e]);\n", "",
     ["--test", "train", "gradients_over_several_and_partial_tiles"]),
    ("fused training forward: activations written over the pre-activations", "src/train/device.rs",
     "act.push(at + rows * w);", "act.push(at);",
     ["--test", "verify", "--", "train.loss"]),
    ("fused backward chain's SiLU derivative is the sigmoid alone", "shaders/mlp_fused.wgsl",
     "    return s * (1.0 + v * (1.0 - s));", "    return s;",
     ["--test", "verify", "--", "train.loss"]),
    ("every-layer weight gradients: the bias sums skip each member's first row", "shaders/mlp_grads.wgsl",
     "for (var r = r_begin; r < r_end; r = r + 1u) {", "for (var r = r_begin + 1u; r < r_end; r = r + 1u) {",
     ["--test", "train", "gradients_over_several_and_partial_tiles"]),
    ("every-layer weight gradients: the bias column of workgroups returns early", "shaders/mlp_grads.wgsl",
     "|| wg.x > in_tiles) {", "|| wg.x >= in_tiles) {",
     ["--test", "verify", "--", "train.loss"]),
    ("fused training: every hidden layer's gradient written over the same region", "src/train/device.rs",
     "            d_at += rows * w;\n", "",
     ["--test", "train", "training_through_the_fused_kernels"]),
    ("every-layer weight gradients read layer 4 and later's output gradients from layer l mod 4's", "shaders/mlp_grads.wgsl",
     "d0_off = grads_params.d_off[l / 4u][l % 4u];", "d0_off = grads_params.d_off[0u][l % 4u];",
     ["--test", "train", "a_deep_ensembles_gradients"]),
    ("backward chain reads product 4 and later's pre-activations from product l mod 4's", "shaders/mlp_fused.wgsl",
     "pre0 = net.pre_off[l / 4u][l % 4u];", "pre0 = net.pre_off[0u][l % 4u];",
     ["--test", "train", "a_deep_ensembles_gradients"]),
    ("train.mlp_kernel = auto refuses instead of falling back when the fused values do not fit", "src/train/device.rs",
     "            (TrainKernel::Auto, Err(_)) => return Ok(None),\n", "",
     ["--test", "train", "auto_falls_back"]),
    ("the trainer ignores the row blocks asked for", "src/train/device.rs",
     "match cfg.fused_blocks {", "match None::<super::FusedBlocks> {",
     ["--test", "train", "every_fused_training_layout"]),
    ("fused layouts: more accumulators than the kernel holds accepted", "src/kernels/mlp_fused.rs",
     "if cols as u64 * (rows4_64 / split_64) > FUSED_MAX_ACC as u64 {", "if false {",
     ["--test", "kernels_vs_cpu", "every_fused_layout"]),
    ("begin_rollout gives every TS1 step the first step's permutation", "shaders/rollout.wgsl",
     "let s = slot_at(n, t);", "let s = slot_at(n, 0u);",
     ["--test", "verify", "--", "plan.ensemble/ts1"]),
    ("propagate reads the particle's slot of the next step", "shaders/rollout.wgsl",
     "let s = slot_of_step(n, params.t);", "let s = slot_of_step(n, min(params.t + 1u, params.horizon - 1u));",
     ["--test", "verify", "--", "plan.ensemble"]),
    ("propagate writes the next step's inputs with this step's action", "shaders/particles.wgsl",
     "write_inputs(n, t + 1u, next_base);", "write_inputs(n, t, next_base);",
     ["--test", "verify", "--", "plan.ensemble"]),
    ("model step writes the next step's inputs into the half it reads", "shaders/model_step.wgsl",
     "let next = step_inputs(t + 1u);", "let next = step_inputs(t);",
     ["--test", "planner", "one_dispatch_model_steps"]),
    ("model step advances the particle numbered as the slot (no inverse table)", "shaders/particles.wgsl",
     "return slot_of[(slot_rows() + slot_row(t)) * total + s];", "return s;",
     ["--test", "verify", "--", "plan.ensemble"]),
    ("model step samples each row's noise with the first row's particle", "shaders/model_step.wgsl",
     "sample_prediction(particle_in_slot(r0 + r, t), d, step_out(d, r), lv, t)",
     "sample_prediction(particle_in_slot(r0 + 4u * q, t), d, step_out(d, r), lv, t)",
     ["--test", "planner", "one_dispatch_model_steps"]),
    ("model step skips the log-variance clamp", "shaders/model_step.wgsl",
     "lv = clamp_logvar(step_out(d_out + d, r), model_consts[2u * in_dim + d], model_consts[2u * in_dim + d_out + d]);",
     "lv = step_out(d_out + d, r);",
     ["--test", "verify", "--", "plan.ensemble"]),
    ("model_step = auto takes the one dispatch for a custom task too", "src/planner/mod.rs",
     "if !explicit && !crate::kernels::is_builtin_task(&task.wgsl) {", "if false {",
     ["--test", "planner", "one_dispatch_model_steps"]),
    ("a TS-infinity model step dispatch runs its first step only", "shaders/model_step.wgsl",
     "    if (params.propagation == PROP_TSINF) {\n        return params.horizon;",
     "    if (params.propagation == PROP_TSINF) {\n        return params.t + 1u;",
     ["--test", "planner", "one_dispatch_model_steps"]),
    ("the TS-infinity plan records a model step dispatch per step", "src/planner/workspace/record.rs",
     "if t == 0 || self.cfg.propagation != Propagation::Tsinf {", "if true {",
     ["--test", "planner", "one_dispatch_model_steps"]),
    ("Philox multiplier off by one (verify)", "shaders/common.wgsl",
     "let p0 = mulhilo(0xD2511F53u, c.x);", "let p0 = mulhilo(0xD2511F54u, c.x);",
     ["--test", "verify", "--", "--exact", "rng.philox/counters 0..n, bit for bit"]),
    ("fused kernel's SiLU uses exp(v) (verify)", "shaders/mlp_fused.wgsl",
     "return v * (1.0 / (1.0 + exp(-v)));", "return v * (1.0 / (1.0 + exp(v)));",
     ["--test", "verify", "--", "mlp.fused"]),
    ("truncated sampling's variance ignores the distance to the bounds (actions still clamped)", "shaders/cem.wgsl",
     "let v = min(min(lb * lb, ub * ub), var_[(b * h + t) * na + a]);", "let v = var_[(b * h + t) * na + a];",
     ["--test", "planner", "narrowed_bounds"]),
    ("best-iteration rule keeps the first iteration", "src/planner/realtime.rs",
     "is_none_or(|(v, _, _)| value > *v || !v.is_finite())", "is_none_or(|(v, _, _)| !v.is_finite())",
     ["--test", "planner", "the_returned_plan_is_the_references"]),
    ("best-iteration rule returns the last iteration", "src/planner/realtime.rs",
     "let chosen = if self.cfg.return_best_iteration { best } else { last };",
     "let chosen = if self.cfg.return_best_iteration { last } else { last };",
     ["--test", "planner", "the_returned_plan_is_the_references"]),
    ("a resume point's NaN model loss written as JSON null and refused on reading", "src/pets/resume.rs",
     "    #[serde(with = \"nan_as_null\")]\n    pub model_loss: f64,",
     "    pub model_loss: f64,",
     ["--lib", "a_resume_point_without_a_model_loss"]),
    ("a run folder's lock is never taken", "src/run/lock.rs",
     "match file.try_lock() {", "match Ok::<(), std::fs::TryLockError>(()) {",
     ["--test", "cli", "a_second_writer_of_a_run_folder_is_refused"]),
    ("overwrite replaces a folder that no run wrote", "src/run/mod.rs",
     "                None => Err(Error::config(", "                None => Ok(()), _unused => Err(Error::config(",
     ["--test", "pets", "overwrite_replaces_only_a_runs_files"]),
    ("a symlink where a run file belongs is not refused", "src/run/mod.rs",
     "            if std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {\n                return Err(",
     "            if false {\n                return Err(",
     ["--test", "pets", "a_symlink_where_a_run_file_belongs"]),
    ("a user's replay.backup.safetensors taken for a point's file", "src/run/mod.rs",
     "number.is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))", "number.is_some()",
     ["--lib", "a_points_files_are_numbered"]),
    ("temporary files under predictable names, following planted links", "src/util.rs",
     "let mut tmp = tempfile::Builder::new().prefix(&format!(\".{name}.\")).suffix(\".tmp\").tempfile_in(dir).map_err(io)?;",
     "let mut tmp = tempfile::NamedTempFile::from_parts(std::fs::File::create(dir.join(format!(\".{name}.tmp-{}\", std::process::id()))).map_err(io)?, tempfile::TempPath::from_path(dir.join(format!(\".{name}.tmp-{}\", std::process::id()))));",
     ["--lib", "atomic_write_replaces_a_symlink"]),
    ("a resume point's counters are not checked against the plan", "src/pets/run_loop.rs",
     "            state.check_plan(dir, cfg)?;\n", "",
     ["--test", "pets", "an_edited_resume_point_is_refused"]),
    ("a member selected twice is accepted", "src/model/mod.rs",
     "find(|(i, m)| members[..*i].contains(m))", "find(|(i, m)| *i > 0 && false && members[..*i].contains(m))",
     ["--test", "model", "selecting_a_member_twice_is_refused"]),
    ("a family compiles an entry point its declaration does not list", "src/kernels/family.rs",
     "if !decl.entry_points.contains(&entry) {", "if false {",
     ["--test", "check_policy", "a_family_compiles_only_what_its_declaration_says"]),
    ("layer bounds checks dropped from a custom task's module too", "src/kernels/family.rs",
     "task.is_none_or(is_builtin_task)", "true",
     ["--test", "check_policy", "only_the_crates_own_wgsl"]),
    ("workgroup sum stops before its last halving", "shaders/reduce.wgsl",
     "s > 0u; s = s >> 1u", "s > 1u; s = s >> 1u",
     ["--test", "verify", "--", "train."]),
    ("gradient norm's final sum reads only the first 256 chunks", "shaders/adam.wgsl",
     "for (var c = t; c < train.n_chunks; c = c + RED_SIZE) {", "for (var c = t; c < min(train.n_chunks, RED_SIZE); c = c + RED_SIZE) {",
     ["--test", "verify", "--", "--exact", "train.adam/five steps: parameters, both moments, step count"]),
    ("member loss sums only the first pass of its workgroup", "shaders/loss.wgsl",
     "for (var j = t; j < n; j = j + RED_SIZE) {", "for (var j = t; j < min(n, RED_SIZE); j = j + RED_SIZE) {",
     ["--test", "verify", "--", "train.loss"]),
    ("an expected failure excuses a failure whatever its message", "src/verify/expected.rs",
     "self.applies_to(adapter) && message.contains(self.message)", "self.applies_to(adapter)",
     ["--lib", "verify::expected"]),
    ("an expected failure ignores the driver it names", "src/verify/expected.rs",
     "\n            && self.driver.is_none_or(|d| contains(&adapter.driver, d))", "",
     ["--lib", "verify::expected"]),
    ("a case listed as an expected failure that passes is accepted", "src/verify/expected.rs",
     "Some(e) => Verdict::PassedButListed(e),", "Some(_) => Verdict::Passed,",
     ["--lib", "verify::expected"]),
    ("a scoring pass ignores the interrupt flag", "src/train/epoch.rs",
     "            if !backward_only && self.interrupted() {",
     "            if ep.adam_bg.is_some() && !backward_only && self.interrupted() {",
     ["--test", "train", "an_interrupt_before_the_first_scores"]),
    ("an interrupted command exits with status 0", "src/bin/lookahead/interrupt.rs",
     "    if interrupted {\n        ExitCode::from(INTERRUPTED)", "    if false {\n        ExitCode::from(INTERRUPTED)",
     ["--test", "cli", "ctrl_c_stops_a_run_in_every_phase"]),
    ("a replay ignores the interrupt flag", "src/run/mod.rs",
     "    let stop = move || stop_requested(flag.as_ref());", "    let stop = move || false && stop_requested(flag.as_ref());",
     ["--test", "pets", "eval_refuses"]),
    ("Python: the wakeup descriptor's watcher never raises the interrupt flag", "python/rust/interrupt.rs",
     "if bytes.contains(&(libc::SIGINT as u8)) {", "if false && bytes.contains(&(libc::SIGINT as u8)) {",
     ["python/tests", "-k", "ctrl_c_stops"], PYTHON),
    # The tensor-core kernel runs only where the adapter offers cooperative matrices (the
    # `mlp.coop16` family of `lookahead verify`); elsewhere these are reported as not run.
    ("coop16: a layer's column groups after its first skipped", "shaders/mlp_coop.wgsl",
     "coop_left = ng - g0;", "coop_left = min(ng - g0, 1u);",
     ["--test", "verify", "--", "mlp.coop16/whole networks"], COOP16),
    ("coop16: a layer's third column group skipped", "shaders/mlp_coop.wgsl",
     "let has2 = left > 2u;", "let has2 = left > 3u;",
     ["--test", "verify", "--", "mlp.coop16/whole networks"], COOP16),
    ("coop16: a repeated group's empty products stored over the first group's", "shaders/mlp_coop.wgsl",
     "if (has1) {\n                let p1 = col1;", "if (true) {\n                let p1 = col1;",
     ["--test", "verify", "--", "mlp.coop16/whole networks"], COOP16),
    ("coop16: the products' row stride sized by the last layer only", "src/kernels/mlp_coop.rs",
     "dims[1..].iter().map(|d| pad_cols(*d))", "dims[dims.len() - 1..].iter().map(|d| pad_cols(*d))",
     ["--test", "verify", "--", "mlp.coop16/whole networks"], COOP16),
    ("coop16: a split leftover tile's last part not summed", "shaders/mlp_coop.wgsl",
     "for (var q = 1u; q < n_parts; q = q + 1u) {", "for (var q = 1u; q + 1u < n_parts; q = q + 1u) {",
     ["--test", "verify", "--", "mlp.coop16/whole networks"], COOP16),
    ("coop16: a split leftover tile's parts drop the K tiles past a whole share", "shaders/mlp_coop.wgsl",
     "let kq = (nk + parts - 1u) / parts;", "let kq = nk / parts;",
     ["--test", "verify", "--", "mlp.coop16/whole networks"], COOP16),
    ("coop16: passes of three column groups step by four", "shaders/mlp_coop.wgsl",
     "for (var g0 = 0u; g0 < ng; g0 = g0 + GP) {", "for (var g0 = 0u; g0 < ng; g0 = g0 + 4u) {",
     ["--test", "verify", "--", "mlp.coop16/whole networks"], COOP16),
    ("coop16 model step: every row of a block reads the first row's inputs", "shaders/model_step_coop.wgsl",
     "v = x0[cur + (r0 + r) * in_dim + k];", "v = x0[cur + r0 * in_dim + k];",
     ["--test", "verify", "--", "mlp.coop16/a plan's candidate returns"], COOP16),
    ("SAC: the tanh correction's derivative has the wrong sign", "shaders/sac.wgsl",
     "let du = alpha * 2.0 * t / f32(n) + g", "let du = -alpha * 2.0 * t / f32(n) + g",
     ["--test", "sac", "one_update_matches"]),
    ("SAC: the critic target takes the max of the twin target critics", "shaders/sac.wgsl",
     "let next_v = min(q_b[b], q_b[n + b])", "let next_v = max(q_b[b], q_b[n + b])",
     ["--test", "sac", "one_update_matches"]),
    ("SAC: the terminated mask dropped from the critic target", "shaders/sac.wgsl",
     "p.gamma * (1.0 - rows[row_terminated(b)]) * next_v", "p.gamma * next_v",
     ["--test", "sac", "one_update_matches"]),
    ("SAC: the actor's min goes to the larger critic", "shaders/sac.wgsl",
     "let first = q_a[b] <= q_a[n + b];", "let first = q_a[b] > q_a[n + b];",
     ["--test", "sac", "one_update_matches"]),
    ("SAC: the targets are never Polyak-averaged", "src/sac/device.rs",
     "        if plan.polyak {", "        if false && plan.polyak {",
     ["--test", "sac", "polyak"]),
    ("SAC: alpha's gradient has the wrong sign", "shaders/sac.wgsl",
     "-(actor.x + p.target_entropy)", "(actor.x + p.target_entropy)",
     ["--test", "sac", "one_update_matches"]),
    ("SAC: the current actions reuse the next actions' noise", "shaders/sac.wgsl",
     "let eps = select(rows[row_eps_next(b, i)], rows[row_eps_cur(b, i)], cur);",
     "let eps = rows[row_eps_next(b, i)];",
     ["--test", "sac", "one_update_matches"]),
    ("SAC: the log-std bound's derivative dropped", "shaders/sac.wgsl",
     "dls * 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (1.0 - tr * tr)", "dls",
     ["--test", "sac", "one_update_matches"]),
    ("SAC: the replay index by modulo instead of the multiply-shift", "shaders/sac.wgsl",
     "let drawn = mulhilo(w.x, select(model_n, p.n_stored, real)).x;",
     "let drawn = w.x % select(model_n, p.n_stored, real);",
     ["--test", "sac", "one_update_matches"]),
    ("SAC: the ring never wraps (rows past the capacity overwrite its last row)", "src/sac/device.rs",
     "let at = (self.stored % self.shapes.capacity as u64) as usize * self.shapes.row_len();",
     "let at = self.stored.min(self.shapes.capacity as u64 - 1) as usize * self.shapes.row_len();",
     ["--test", "verify", "--", "sac/"]),
    ("SAC: the terminated flag read from the last next-observation value", "shaders/sac.wgsl",
     "rows[row_terminated(b)] = transition_value(real, base + width + 1u + d);",
     "rows[row_terminated(b)] = transition_value(real, base + width + d);",
     ["--test", "verify", "--", "sac/"]),
    ("SAC: Q2's loss gradient without its factor 2", "shaders/sac.wgsl",
     "dq[n + b] = 2.0 * d2 / f32(n);", "dq[n + b] = d2 / f32(n);",
     ["--test", "verify", "--", "sac/"]),
    ("SAC: the critics stepped at the actor's learning rate", "src/sac/device.rs",
     'let critic = Trained::new(ctx, &adam, "sac.critic", &init.critic, lr_c, settings.adam)?;',
     'let critic = Trained::new(ctx, &adam, "sac.critic", &init.critic, lr_a, settings.adam)?;',
     ["--test", "verify", "--", "sac/"]),
    ("SAC: the current actions' noise numbered by row plus action (repeats across rows)", "shaders/sac.wgsl",
     "rows[row_eps_cur(b, i)] = normal(PURPOSE_SAC_CUR, b * a + i, p.update_lo, p.update_hi);",
     "rows[row_eps_cur(b, i)] = normal(PURPOSE_SAC_CUR, b + i, p.update_lo, p.update_hi);",
     ["--test", "verify", "--", "sac/"]),
    ("SAC: the Polyak average keeps none of the old target", "shaders/sac.wgsl",
     "dst[i] = p.tau * src[i] + (1.0 - p.tau) * dst[i];", "dst[i] = p.tau * src[i] + (1.0 - p.tau) * src[i];",
     ["--test", "verify", "--", "sac/"]),
    ("layered network: ReLU's derivative is 1 everywhere", "shaders/mlp.wgsl",
     "case 2u: { return select(0.0, 1.0, v > 0.0); }", "case 2u: { return 1.0; }",
     ["--test", "sac", "one_update_matches"]),
    ("ensemble: the total-parameter limit not checked", "src/model/mod.rs",
     "            Some(n) if n <= MAX_PARAMS => {}", "            Some(_) => {}",
     ["--test", "model", "depth_and_total_parameters"]),
    ("ensemble: any number of hidden layers", "src/model/mod.rs",
     "    if hidden.len() > MAX_HIDDEN_LAYERS {", "    if false && hidden.len() > MAX_HIDDEN_LAYERS {",
     ["--test", "model", "depth_and_total_parameters"]),
    ("trainer: the values of every layer counted without the hidden layers", "src/train/mod.rs",
     ".saturating_add(2 * hidden);", ";",
     ["--test", "train", "the_values_of_every_layer"]),
    ("pets: the run's transitions not checked before exploring", "src/pets/run_loop.rs",
     "    let trainer = trainer.and_then(|t| t.check_transitions(most_transitions(cfg), TRANSITIONS_HINT).map(|()| t));\n", "",
     ["--test", "pets", "sizes_the_device_cannot_hold"]),
    ("checkpoints: version-1 manifests accepted for training again", "src/train/checkpoint.rs",
     "            1 => return Err(FormatError::UncheckedManifest { found: 1 }),", "            1 => {}",
     ["--test", "model", "version_one_checkpoints"]),
    ("checkpoints: repeated elites accepted", "src/train/checkpoint.rs",
     ".find(|(i, e)| elites[..*i].contains(e))", ".find(|(i, e)| false && elites[..*i].contains(e))",
     ["--test", "model", "version_one_checkpoints"]),
    ("resume: a state may name any file with a matching checksum", "src/run/point.rs",
     "        if *name != expected {", "        if false && *name != expected {",
     ["--test", "fuzz", "edited_resume_states"]),
    ("resume: env_steps not tied to the exploration and the planned steps", "src/pets/resume.rs",
     "        if self.env_steps as u128 != explored + self.planned_steps as u128 {", "        if false && self.env_steps as u128 != explored + self.planned_steps as u128 {",
     ["--test", "fuzz", "edited_resume_states"]),
    ("resume: a replay buffer short of the counted steps accepted", "src/pets/run_loop.rs",
     "    if buffer.len() != state.env_steps {", "    if false && buffer.len() != state.env_steps {",
     ["--test", "pets", "an_edited_resume_point"]),
    ("replay buffers of any size accepted", "src/train/buffer.rs",
     "        Error::collect(crate::kernels::check_dims(\"\", obs_dim, act_dim))?;\n", "",
     ["--test", "train", "replay_buffers_of_sizes"]),
    ("random shooting takes iterations, alpha and elite_ratio again", "src/planner/config.rs",
     "        if self.kind == PlannerKind::RandomShooting {\n            let why", "        if false {\n            let why",
     ["--test", "planners", "random_shooting_refuses"]),
    ("bench: a kernel that cannot run called wrong maths again", "src/verify/gate.rs",
     "            Err(e) => return Err(cannot_run(kernel, model_step, c, e)),", "            Err(_) => failed.push(run_case(ctx, c)),",
     ["--test", "cli", "a_bench_kernel_that_cannot_run"]),
    ("custom task errors at the combined module's lines", "src/kernels/family.rs",
     "            Some(t) => in_task_lines(e, t, decl.task_first_line()),", "            Some(_) => e,",
     ["--test", "errors", "an_error_in_a_custom_tasks_wgsl"]),
    ("config texts of any size parsed", "src/util.rs",
     "    if len <= MAX_CONFIG_BYTES {", "    if true || len <= MAX_CONFIG_BYTES {",
     ["--test", "pets", "config_texts_past_one_mebibyte"]),
    ("MBPO: every rollout steps through the first elite", "shaders/mbpo.wgsl",
     "let m = elites[mulhilo(draw(PURPOSE_MBPO_MEMBER, params.first + r).x, params.n_elites).x];",
     "let m = elites[0];",
     ["--test", "verify", "--", "mbpo.rollout/"]),
    ("MBPO: a terminated rollout goes on adding transitions", "shaders/mbpo.wgsl",
     "    if (trans[r * n + n - 1u] != 0.0) {\n        alive[r] = 0.0;",
     "    if (trans[r * n + n - 1u] != 0.0) {\n        alive[r] = 1.0;",
     ["--test", "verify", "--", "mbpo.rollout/cartpole"]),
    ("MBPO: the ring's head never advances (each step overwrites the newest rows)", "shaders/mbpo.wgsl",
     "ring_state[0] = (head + total) % params.capacity;", "ring_state[0] = head;",
     ["--test", "verify", "--", "mbpo.rollout/"]),
    ("MBPO: the model's standard deviation taken as its variance", "shaders/mbpo.wgsl",
     "v = v + exp(0.5 * lv) * normal(PURPOSE_MBPO_NOISE", "v = v + exp(lv) * normal(PURPOSE_MBPO_NOISE",
     ["--test", "verify", "--", "mbpo.rollout/cartpole"]),
    ("MBPO: the rollouts' start states drawn from the first real row only", "shaders/mbpo.wgsl",
     "let idx = mulhilo(draw(PURPOSE_MBPO_START, params.first + r).x, params.n_real).x;", "let idx = 0u;",
     ["--test", "verify", "--", "mbpo.rollout/"]),
    ("MBPO: the draws follow the pass's row instead of the batch's rollout", "shaders/mbpo.wgsl",
     "normal(PURPOSE_MBPO_ACT, (params.first + r) * a + i)", "normal(PURPOSE_MBPO_ACT, r * a + i)",
     ["--test", "verify", "--", "mbpo.rollout/cartpole"]),
    ("MBPO: the reward computed on the next state as the state before", "shaders/mbpo.wgsl",
     "reward = env_reward(s, act, next);", "reward = env_reward(next, act, next);",
     ["--test", "verify", "--", "mbpo.rollout/pendulum"]),
    ("SAC with a model ring: the model rows drawn from the whole ring, not its newest window", "shaders/sac.wgsl",
     "let model_n = min(ring_state[1], p.model_window);", "let model_n = ring_state[1];",
     ["--test", "sac", "minibatches_mix"]),
    ("SAC with a model ring: every row drawn from the model ring", "shaders/sac.wgsl",
     "let real = b < p.n_real_rows || model_n == 0u;", "let real = model_n == 0u;",
     ["--test", "sac", "minibatches_mix"]),
    ("MBPO: the retraining schedule counted from step 0 instead of the first learning step", "src/mbpo/run_loop.rs",
     "let learning = env_step.saturating_sub(cfg.schedule.initial_exploration_steps as u64);",
     "let learning = env_step;",
     ["--lib", "retraining_and_epochs"]),
]


def adapter_runs_coop16() -> tuple[bool, str]:
    """Whether the adapter the tests open runs the tensor-core kernel, and `verify`'s line on it."""
    run = subprocess.run(["cargo", "run", "--release", "--quiet", "--", "verify", "--quick"],
                         cwd=ROOT, capture_output=True, text=True)
    line = next((l for l in (run.stdout + run.stderr).splitlines() if "optional family mlp.coop16" in l),
                "optional family mlp.coop16: not reported by `lookahead verify --quick`")
    return line.endswith(": run"), line.strip()


def run_python_tests(args: list) -> subprocess.CompletedProcess:
    """pytest ``args`` against the package built from the working tree: the extension built by
    cargo, beside the package's Python files in a temporary folder put first on the path."""
    build = subprocess.run(["cargo", "build", "--release", "-p", "lookahead-python", "--features", "extension-module"],
                           cwd=ROOT, capture_output=True, text=True)
    if build.returncode != 0:
        return build
    with tempfile.TemporaryDirectory() as tmp:
        package = pathlib.Path(tmp) / "lookahead"
        shutil.copytree(ROOT / "python" / "src" / "lookahead", package)
        shutil.copy(ROOT / "target" / "release" / "lib_lookahead.so", package / "_lookahead.abi3.so")
        env = {**os.environ, "PYTHONPATH": tmp}
        return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True)


def main() -> int:
    only = sys.argv[1] if len(sys.argv) > 1 else ""
    survived = []
    not_run = 0
    coop16 = None
    for name, rel, old, new, args, *needs in MUTATIONS:
        if only and only not in name:
            continue
        if COOP16 in needs:
            if coop16 is None:
                coop16 = adapter_runs_coop16()
            if not coop16[0]:
                print(f"NOT RUN  {name}  ({coop16[1]})")
                not_run += 1
                continue
        path = ROOT / rel
        text = path.read_text()
        if text.count(old) != 1:
            print(f"SKIPPED (the original text is not found exactly once): {name}")
            survived.append(name)
            continue
        path.write_text(text.replace(old, new))
        try:
            if PYTHON in needs:
                run = run_python_tests(args)
            else:
                run = subprocess.run(["cargo", "test", *args], cwd=ROOT, capture_output=True, text=True)
        finally:
            path.write_text(text)
        if PYTHON in needs:
            # pytest's status 1: tests ran and some failed (not a build or collection error).
            caught = run.returncode == 1 and " failed" in run.stdout
            print(f"{'caught  ' if caught else 'SURVIVED'} {name}  (pytest {' '.join(args)})")
        else:
            caught = run.returncode != 0 and "test result: FAILED" in run.stdout + run.stderr
            print(f"{'caught  ' if caught else 'SURVIVED'} {name}  (cargo test {' '.join(args)})")
        if not caught:
            survived.append(name)
    if not_run:
        print(f"{not_run} mutation(s) not run: they need an adapter with cooperative matrices")
    return 1 if survived else 0

if __name__ == "__main__":
    sys.exit(main())
