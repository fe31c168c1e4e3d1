// adam.wgsl — global gradient norm and the Adam update over the flat parameter buffer (Kingma &
// Ba 2015; weight decay added to the gradient as torch.optim.Adam does; optional global-norm
// clipping as torch.nn.utils.clip_grad_norm_).
//
// Bindings
//   group 0, 0 train    : TrainParams (uniform, dynamic offset; loss.wgsl documents the fields)
//   group 1, 0 params   : [n_params] flat parameters: every layer's weight and bias, then
//                         max_logvar (bounds_offset) and min_logvar (min_offset); aligned starts, zero padding
//   group 1, 1 grads    : [n_params] gradients, same layout
//   group 1, 2 moment1  : [n_params] Adam first moments
//   group 1, 3 moment2  : [n_params] Adam second moments
//   group 1, 4 partials : [n_chunks] sums of squared gradients per chunk of CHUNK values
//   group 1, 5 stats    : loss.wgsl layout; gradient norms at [n_steps · E + step]
//   group 1, 6 counters : u32 [adam steps taken, current run of skipped steps, skipped steps, longest run]
//
// Entry points: grad_norm_partial (a workgroup per chunk), grad_norm_final (one workgroup: norm,
// counters; both sum in reduce.wgsl's fixed order),
// adam_step (per parameter; does nothing when the norm is not finite: the step is skipped).
// CPU reference: kernels::adam::reference.

// Values per workgroup of grad_norm_partial (kernels::adam::NORM_CHUNK).
const CHUNK: u32 = 2048u;

@group(0) @binding(0) var<uniform> train: TrainParams;
@group(1) @binding(0) var<storage, read_write> params: array<f32>;
@group(1) @binding(1) var<storage, read> grads: array<f32>;
@group(1) @binding(2) var<storage, read_write> moment1: array<f32>;
@group(1) @binding(3) var<storage, read_write> moment2: array<f32>;
@group(1) @binding(4) var<storage, read_write> partials: array<f32>;
@group(1) @binding(5) var<storage, read_write> stats: array<f32>;
@group(1) @binding(6) var<storage, read_write> counters: array<u32>;

fn norm_slot() -> u32 {
    return train.n_steps * train.n_members + train.step;
}

// One workgroup per chunk of CHUNK values, read in coalesced strides, summed in reduce.wgsl's order.
@compute @workgroup_size(RED_SIZE)
fn grad_norm_partial(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let c = wid.x + wid.y * nwg.x;
    if (c >= train.n_chunks) {
        return;
    }
    var s = 0.0;
    let end = min((c + 1u) * CHUNK, train.n_params);
    for (var i = c * CHUNK + t; i < end; i = i + RED_SIZE) {
        s = s + grads[i] * grads[i];
    }
    let total = workgroup_sum(t, vec2<f32>(s, 0.0)).x;
    if (t == 0u) {
        partials[c] = total;
    }
}

// One workgroup: the chunks' sums, the norm and the step counters.
@compute @workgroup_size(RED_SIZE)
fn grad_norm_final(@builtin(local_invocation_index) t: u32) {
    var s = 0.0;
    for (var c = t; c < train.n_chunks; c = c + RED_SIZE) {
        s = s + partials[c];
    }
    let norm = sqrt(workgroup_sum(t, vec2<f32>(s, 0.0)).x);
    if (t != 0u) {
        return;
    }
    stats[norm_slot()] = norm;
    if (is_finite(norm)) {
        counters[0] = counters[0] + 1u;
        counters[1] = 0u;
    } else {
        counters[1] = counters[1] + 1u;
        counters[2] = counters[2] + 1u;
        counters[3] = max(counters[3], counters[1]);
    }
}

@compute @workgroup_size(WG_SIZE)
fn adam_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= train.n_params) {
        return;
    }
    let norm = stats[norm_slot()];
    if (!is_finite(norm)) {
        return;
    }
    let is_bound = i >= train.bounds_offset;
    if (is_bound && train.learn_bounds == 0u) {
        return;
    }
    var g = grads[i];
    if (train.clip_norm > 0.0 && norm > train.clip_norm) {
        g = g * (train.clip_norm / (norm + 1e-6));
    }
    if (!is_bound) {
        g = g + train.weight_decay * params[i];
    }
    let t = f32(counters[0]);
    let m = train.beta1 * moment1[i] + (1.0 - train.beta1) * g;
    let v = train.beta2 * moment2[i] + (1.0 - train.beta2) * g * g;
    moment1[i] = m;
    moment2[i] = v;
    let m_hat = m / (1.0 - pow(train.beta1, t));
    let v_hat = v / (1.0 - pow(train.beta2, t));
    params[i] = params[i] - train.lr * m_hat / (sqrt(v_hat) + train.eps);
}
