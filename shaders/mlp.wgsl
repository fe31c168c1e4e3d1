// mlp.wgsl — ensemble linear layers for every member at once, forward and backward, as one
// strided batched matrix product with per-entry-point index maps and epilogues.
//
// Bindings (group 0)
//   0 layer : LayerParams (uniform)   sizes of this layer and the slot layout
//   1 a_src : array<f32>  first operand  (forward: x; backward_input: δ_out; backward_weights: x)
//   2 b_src : array<f32>  second operand (forward, backward_input: weight; backward_weights: δ_out)
//   3 bias  : array<f32>  [E, out_dim]   bias[m * out_dim + o] (forward only)
//   4 c_dst : array<f32>  result         (forward: y; backward_input: δ_in; backward_weights: dW, then db
//                         from bias_grad_off when that is > 0)
//   5 aux   : array<f32>  pre-activations: written by forward when store_pre = 1 ([rows, out_dim]);
//                         read by backward_input (the previous layer's, [rows, in_dim]) for SiLU′
//
// Layouts: x[row * in_dim + k], y[row * out_dim + o], weight[(m * in_dim + k) * out_dim + o].
// Rows are member-major: member m owns rows [n_batch · ceil(m·L/E), n_batch · ceil((m+1)·L/E))
// with L = local_slots (kernels/mod.rs "Slots").
//
// Entry points (dispatch (tiles of P, tiles of Q, E) with 64×64 tiles of tile.wgsl's
// `tile_product`, `mode` selecting the index maps below):
//   forward          y[r, o]   = act(Σ_k x[r, k] W[m, k, o] + b[m, o])            P = rows, Q = out, K = in
//   backward_input   δin[r, i] = (Σ_o δout[r, o] W[m, i, o]) · act′(pre_in[r, i])   P = rows, Q = in,  K = out
//   backward_weights dW[m, i, o] = Σ_(r of m) x[r, i] δout[r, o]                    P = in,   Q = out, K = rows of m
//                    and, when bias_grad_off > 0, db[m, o] = Σ_(r of m) δout[r, o] in one more column
//                    of workgroups (x = tiles of in), one invocation per o summing the rows in order:
//                    one dispatch for both gradients
// activation: 0 = identity, 1 = SiLU, 2 = ReLU (ReLU′(0) = 0). For backward_input, activation is that of the *previous*
// layer (whose output is this layer's input).
// CPU reference: kernels::mlp::reference::layer_f64 (forward); the backward entry points together
// with loss.wgsl: train::reference::loss_and_grads_f64.

struct LayerParams {
    n_batch: u32,
    local_slots: u32,
    n_members: u32,
    in_dim: u32,
    out_dim: u32,
    activation: u32,
    store_pre: u32,
    // backward_weights: where the bias gradients start in c_dst (0: weights only).
    bias_grad_off: u32,
}

@group(0) @binding(0) var<uniform> layer: LayerParams;
@group(0) @binding(1) var<storage, read> a_src: array<f32>;
@group(0) @binding(2) var<storage, read> b_src: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c_dst: array<f32>;
@group(0) @binding(5) var<storage, read_write> aux: array<f32>;

const MODE_FORWARD: u32 = 0u;
const MODE_BACKWARD_INPUT: u32 = 1u;
const MODE_BACKWARD_WEIGHTS: u32 = 2u;

fn sigmoid(v: f32) -> f32 {
    return 1.0 / (1.0 + exp(-v));
}

fn silu(v: f32) -> f32 {
    return v * sigmoid(v);
}

fn silu_grad(v: f32) -> f32 {
    let s = sigmoid(v);
    return s * (1.0 + v * (1.0 - s));
}

fn activate(kind: u32, v: f32) -> f32 {
    switch kind {
        case 1u: { return silu(v); }
        case 2u: { return max(v, 0.0); }
        default: { return v; }
    }
}

// The derivative of `activate(kind, ·)` at the pre-activation `v`.
fn activate_grad(kind: u32, v: f32) -> f32 {
    switch kind {
        case 1u: { return silu_grad(v); }
        case 2u: { return select(0.0, 1.0, v > 0.0); }
        default: { return 1.0; }
    }
}

fn member_rows(m: u32) -> vec2<u32> {
    return vec2<u32>(
        layer.n_batch * local_block_start(m, layer.local_slots, layer.n_members),
        layer.n_batch * local_block_start(m + 1u, layer.local_slots, layer.n_members),
    );
}

fn a_index(mode: u32, p: u32, k: u32) -> u32 {
    switch mode {
        case 0u: { return p * layer.in_dim + k; }
        case 1u: { return p * layer.out_dim + k; }
        default: { return k * layer.in_dim + p; }
    }
}

fn b_index(mode: u32, m: u32, k: u32, q: u32) -> u32 {
    switch mode {
        case 0u: { return (m * layer.in_dim + k) * layer.out_dim + q; }
        case 1u: { return (m * layer.in_dim + q) * layer.out_dim + k; }
        default: { return k * layer.out_dim + q; }
    }
}

@compute @workgroup_size(16, 16, 1)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
           @builtin(local_invocation_index) li: u32) {
    let m = wg.z;
    let rows = member_rows(m);
    let p0 = rows.x + wg.x * TILE_M;
    if (p0 >= rows.y) {
        return;
    }
    let q0 = wg.y * TILE_N;
    let out_dim = layer.out_dim;
    let acc = tile_product(MODE_FORWARD, m, p0, rows.y, q0, out_dim, 0u, layer.in_dim, lid, li);
    for (var i = 0u; i < 4u; i = i + 1u) {
        let row = p0 + lid.y * 4u + i;
        let r = block_row(acc, i);
        for (var j = 0u; j < 4u; j = j + 1u) {
            let col = q0 + lid.x + 16u * j;
            if (row < rows.y && col < out_dim) {
                var v = r[j] + bias[m * out_dim + col];
                if (layer.store_pre == 1u) {
                    aux[row * out_dim + col] = v;
                }
                v = activate(layer.activation, v);
                c_dst[row * out_dim + col] = v;
            }
        }
    }
}

@compute @workgroup_size(16, 16, 1)
fn backward_input(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
                  @builtin(local_invocation_index) li: u32) {
    let m = wg.z;
    let rows = member_rows(m);
    let p0 = rows.x + wg.x * TILE_M;
    if (p0 >= rows.y) {
        return;
    }
    let q0 = wg.y * TILE_N;
    let in_dim = layer.in_dim;
    let acc = tile_product(MODE_BACKWARD_INPUT, m, p0, rows.y, q0, in_dim, 0u, layer.out_dim, lid, li);
    for (var i = 0u; i < 4u; i = i + 1u) {
        let row = p0 + lid.y * 4u + i;
        let r = block_row(acc, i);
        for (var j = 0u; j < 4u; j = j + 1u) {
            let col = q0 + lid.x + 16u * j;
            if (row < rows.y && col < in_dim) {
                var v = r[j];
                if (layer.activation != 0u) {
                    v = v * activate_grad(layer.activation, aux[row * in_dim + col]);
                }
                c_dst[row * in_dim + col] = v;
            }
        }
    }
}

@compute @workgroup_size(16, 16, 1)
fn backward_weights(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
                    @builtin(local_invocation_index) li: u32) {
    let m = wg.z;
    let rows = member_rows(m);
    let p0 = wg.x * TILE_M;
    let q0 = wg.y * TILE_N;
    let in_dim = layer.in_dim;
    let out_dim = layer.out_dim;
    // The workgroups past the weight tiles sum the bias gradients (a uniform branch: the whole
    // workgroup takes it).
    if (layer.bias_grad_off > 0u && p0 >= in_dim) {
        let q = q0 + li;
        if (li < TILE_N && q < out_dim) {
            var s = 0.0;
            for (var r = rows.x; r < rows.y; r = r + 1u) {
                s = s + b_src[r * out_dim + q];
            }
            c_dst[layer.bias_grad_off + m * out_dim + q] = s;
        }
        return;
    }
    let acc = tile_product(MODE_BACKWARD_WEIGHTS, m, p0, in_dim, q0, out_dim, rows.x, rows.y, lid, li);
    store_block(acc, m * in_dim * out_dim, p0, in_dim, q0, out_dim, lid);
}
