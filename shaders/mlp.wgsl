// mlp.wgsl — one linear layer of every ensemble member at once: y = act(x · W[m] + b[m]).
//
// Bindings (group 0)
//   0 layer  : LayerParams (uniform)         sizes of this layer and the slot layout
//   1 x      : array<f32> [n_rows, in_dim]    input rows, member-major (kernels/mod.rs "Slots")
//   2 weight : array<f32> [E, in_dim, out_dim] weight[(m * in_dim + k) * out_dim + o]
//   3 bias   : array<f32> [E, out_dim]         bias[m * out_dim + o]
//   4 y      : array<f32> [n_rows, out_dim]    output rows
//
// Dispatch: (ceil(max rows of a member / 64), ceil(out_dim / 64), E). Member m owns the rows
// [n_batch · ceil(m·L/E), n_batch · ceil((m+1)·L/E)) with L = local_slots.
// Each workgroup computes a 64×64 output tile, 4×4 outputs per invocation, K in chunks of 16
// staged in workgroup memory. activation: 0 = identity, 1 = SiLU.
// CPU reference: kernels::mlp::reference::layer_f64.

struct LayerParams {
    n_batch: u32,
    local_slots: u32,
    n_members: u32,
    in_dim: u32,
    out_dim: u32,
    activation: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> layer: LayerParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

const TILE_M: u32 = 64u;
const TILE_N: u32 = 64u;
const TILE_K: u32 = 16u;

var<workgroup> x_tile: array<f32, 1024>; // [TILE_K][TILE_M]
var<workgroup> w_tile: array<f32, 1024>; // [TILE_K][TILE_N]

fn silu(v: f32) -> f32 {
    return v / (1.0 + exp(-v));
}

@compute @workgroup_size(16, 16, 1)
fn forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let m = wg.z;
    let row_begin = layer.n_batch * local_block_start(m, layer.local_slots, layer.n_members);
    let row_end = layer.n_batch * local_block_start(m + 1u, layer.local_slots, layer.n_members);
    let row0 = row_begin + wg.x * TILE_M;
    if (row0 >= row_end) {
        return;
    }
    let col0 = wg.y * TILE_N;
    let in_dim = layer.in_dim;
    let out_dim = layer.out_dim;
    let w_base = m * in_dim * out_dim;

    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i = i + 1u) {
        acc[i] = 0.0;
    }
    for (var k0 = 0u; k0 < in_dim; k0 = k0 + TILE_K) {
        for (var e = 0u; e < 4u; e = e + 1u) {
            let idx = li + 256u * e;
            // x tile: consecutive invocations read consecutive k of one row.
            let r = idx / TILE_K;
            let kk = idx % TILE_K;
            let row = row0 + r;
            let k = k0 + kk;
            var xv = 0.0;
            if (row < row_end && k < in_dim) {
                xv = x[row * in_dim + k];
            }
            x_tile[kk * TILE_M + r] = xv;
            // weight tile: consecutive invocations read consecutive output columns.
            let wk = idx / TILE_N;
            let c = idx % TILE_N;
            let col = col0 + c;
            let k2 = k0 + wk;
            var wv = 0.0;
            if (col < out_dim && k2 < in_dim) {
                wv = weight[w_base + k2 * out_dim + col];
            }
            w_tile[wk * TILE_N + c] = wv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TILE_K; kk = kk + 1u) {
            var a: array<f32, 4>;
            var b: array<f32, 4>;
            for (var i = 0u; i < 4u; i = i + 1u) {
                a[i] = x_tile[kk * TILE_M + lid.y * 4u + i];
                b[i] = w_tile[kk * TILE_N + lid.x + 16u * i];
            }
            for (var i = 0u; i < 4u; i = i + 1u) {
                for (var j = 0u; j < 4u; j = j + 1u) {
                    acc[i * 4u + j] = acc[i * 4u + j] + a[i] * b[j];
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i = i + 1u) {
        let row = row0 + lid.y * 4u + i;
        if (row >= row_end) {
            continue;
        }
        for (var j = 0u; j < 4u; j = j + 1u) {
            let col = col0 + lid.x + 16u * j;
            if (col < out_dim) {
                var v = acc[i * 4u + j] + bias[m * out_dim + col];
                if (layer.activation == 1u) {
                    v = silu(v);
                }
                y[row * out_dim + col] = v;
            }
        }
    }
}
