// loss.wgsl — minibatch gathering and the Gaussian negative log-likelihood (or MSE) of an
// ensemble, with gradients through the PETS log-variance soft clamp (Chua et al. 2018, App. A.1;
// loss as in mbrl-lib's GaussianMLP: mean over rows and outputs of (μ − y)²·e^(−lv) + lv per
// member, summed over members, plus penalty·(Σ max_logvar − Σ min_logvar)).
//
// Bindings
//   group 0, 0 train    : TrainParams (uniform, dynamic offset: one entry per minibatch step)
//   group 1, 0 dataset  : [n, in_dim + model_out]  normalised inputs, then raw targets (Δobs[, reward])
//   group 1, 1 indices  : [steps, E, batch] u32    rows of `dataset` drawn for each member and step
//   group 1, 2 x0       : [E · batch, in_dim]      gathered model inputs (member-major)
//   group 1, 3 out      : [E · batch, out_cols]    last layer output: means, then raw log-variances
//   group 1, 4 grad_out : [E · batch, out_cols]    ∂loss/∂out
//   group 1, 5 params   : flat parameters (log-variance bounds at bounds_offset / min_offset)
//   group 1, 6 grads    : flat gradients (this family writes the bounds' gradients)
//   group 1, 7 stats    : [steps · E] member losses | [steps] gradient norms | [E · batch · model_out · 3] terms
//
// Entry points: gather_batch (per x0 value), nll_grad (per row and output), reduce_loss
// (workgroups 0..E: member losses; E..E + model_out: bound gradients; reduce.wgsl's fixed order).
// Rows r ≥ valid_rows of a member's block are padding of a short last batch: no loss, no gradient.
// CPU reference: kernels::loss::reference.

@group(0) @binding(0) var<uniform> train: TrainParams;
@group(1) @binding(0) var<storage, read> dataset: array<f32>;
@group(1) @binding(1) var<storage, read> indices: array<u32>;
@group(1) @binding(2) var<storage, read_write> x0: array<f32>;
@group(1) @binding(3) var<storage, read> out: array<f32>;
@group(1) @binding(4) var<storage, read_write> grad_out: array<f32>;
@group(1) @binding(5) var<storage, read> params: array<f32>;
@group(1) @binding(6) var<storage, read_write> grads: array<f32>;
@group(1) @binding(7) var<storage, read_write> stats: array<f32>;

fn sigmoid(v: f32) -> f32 {
    return 1.0 / (1.0 + exp(-v));
}

// Dataset row of batch row `row` (a padding row repeats the member's first row).
fn source_row(row: u32) -> u32 {
    let m = row / train.batch;
    var r = row % train.batch;
    if (r >= train.valid_rows) {
        r = 0u;
    }
    return indices[(train.step * train.n_members + m) * train.batch + r];
}

fn out_cols() -> u32 {
    if (train.probabilistic == 1u) {
        return 2u * train.model_out;
    }
    return train.model_out;
}

fn terms_base() -> u32 {
    return train.n_steps * train.n_members + train.n_steps;
}

@compute @workgroup_size(WG_SIZE)
fn gather_batch(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    let in_dim = train.in_dim;
    if (i >= train.n_members * train.batch * in_dim) {
        return;
    }
    let row = i / in_dim;
    let k = i % in_dim;
    x0[i] = dataset[source_row(row) * (in_dim + train.model_out) + k];
}

@compute @workgroup_size(WG_SIZE)
fn nll_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    let mo = train.model_out;
    if (i >= train.n_members * train.batch * mo) {
        return;
    }
    let row = i / mo;
    let d = i % mo;
    let cols = out_cols();
    let t_base = terms_base() + i * 3u;
    if (row % train.batch >= train.valid_rows) {
        grad_out[row * cols + d] = 0.0;
        if (train.probabilistic == 1u) {
            grad_out[row * cols + mo + d] = 0.0;
        }
        stats[t_base] = 0.0;
        stats[t_base + 1u] = 0.0;
        stats[t_base + 2u] = 0.0;
        return;
    }
    let scale = 1.0 / f32(train.valid_rows * mo);
    let y = dataset[source_row(row) * (train.in_dim + mo) + train.in_dim + d];
    let diff = out[row * cols + d] - y;
    if (train.probabilistic == 0u || train.objective == 1u) {
        grad_out[row * cols + d] = 2.0 * diff * scale;
        stats[t_base] = diff * diff;
        stats[t_base + 1u] = 0.0;
        stats[t_base + 2u] = 0.0;
        return;
    }
    let raw = out[row * cols + mo + d];
    let max_lv = params[train.bounds_offset + d];
    let min_lv = params[train.min_offset + d];
    let s2 = sigmoid(max_lv - raw);
    let u = max_lv - softplus(max_lv - raw);
    let s1 = sigmoid(u - min_lv);
    let lv = min_lv + softplus(u - min_lv);
    let inv_var = exp(-lv);
    let d_lv = (1.0 - diff * diff * inv_var) * scale;
    grad_out[row * cols + d] = 2.0 * diff * inv_var * scale;
    grad_out[row * cols + mo + d] = d_lv * s1 * s2;
    stats[t_base] = diff * diff * inv_var + lv;
    stats[t_base + 1u] = d_lv * s1 * (1.0 - s2);
    stats[t_base + 2u] = d_lv * (1.0 - s1);
}

// One workgroup of RED_SIZE invocations per member (its loss) and per output dimension (the
// gradients of its two log-variance bounds), each summing in reduce.wgsl's fixed order.
@compute @workgroup_size(RED_SIZE)
fn reduce_loss(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let i = wid.x + wid.y * nwg.x;
    let e = train.n_members;
    let mo = train.model_out;
    let base = terms_base();
    if (i < e) {
        // The member's valid rows are the first valid_rows · mo terms of its block.
        let n = train.valid_rows * mo;
        let first = base + i * train.batch * mo * 3u;
        var s = 0.0;
        for (var j = t; j < n; j = j + RED_SIZE) {
            s = s + stats[first + j * 3u];
        }
        let total = workgroup_sum(t, vec2<f32>(s, 0.0)).x;
        if (t == 0u) {
            stats[train.step * e + i] = total / f32(n);
        }
        return;
    }
    if (i >= e + mo || train.probabilistic == 0u || train.objective == 1u) {
        return;
    }
    let d = i - e;
    var g = vec2<f32>(0.0, 0.0);
    if (train.learn_bounds == 1u) {
        // Padding rows' terms are zero (nll_grad).
        var s = vec2<f32>(0.0, 0.0);
        for (var row = t; row < e * train.batch; row = row + RED_SIZE) {
            let k = base + (row * mo + d) * 3u;
            s = s + vec2<f32>(stats[k + 1u], stats[k + 2u]);
        }
        g = workgroup_sum(t, s) + vec2<f32>(train.logvar_penalty, -train.logvar_penalty);
    }
    if (t == 0u) {
        grads[train.bounds_offset + d] = g.x;
        grads[train.min_offset + d] = g.y;
    }
}
