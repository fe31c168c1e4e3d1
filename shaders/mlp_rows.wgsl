// mlp_rows.wgsl — one ensemble layer, one invocation per row, weights read from uniform
// buffers: the fast path on CPU rasterisers (lavapipe/llvmpipe), which scalarise every storage
// and workgroup-memory access lane by lane but broadcast uniform loads. Same maths as
// mlp.wgsl's `forward`.
//
// Bindings (group 0; one bind group per layer and member)
//   0 rows   : RowsParams (uniform)   sizes, the member, the chunking of the weights
//   1 x      : array<f32> [n_rows, in_dim]   input rows, member-major (kernels/mod.rs "Slots")
//   2 bias   : array<f32> [E, out_dim]
//   3 y      : array<f32> [n_rows, out_dim]
//   4..7 w0..w3 : array<vec4<f32>, 4096> (64 KiB windows) — the member's weights, K split into
//            chunks of rows_per_chunk rows: chunk c holds rows [c·rpc, (c+1)·rpc) with
//            w_c[(k − c·rpc) · out4 + j] = (W[k, 4j], …, W[k, 4j + 3]) (zero padded)
//
// Dispatch: ceil(rows of the member / WG_SIZE) workgroups, once per member.
// CPU reference: kernels::mlp::reference::layer_f64 (the same as `forward`).

struct RowsParams {
    n_batch: u32,
    local_slots: u32,
    n_members: u32,
    in_dim: u32,
    out_dim: u32,
    out4: u32,
    rows_per_chunk: u32,
    activation: u32,
    member: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const MAX_OUT4: u32 = 64u;
const WINDOW: u32 = 4096u;

@group(0) @binding(0) var<uniform> rows: RowsParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> w0: array<vec4<f32>, WINDOW>;
@group(0) @binding(5) var<uniform> w1: array<vec4<f32>, WINDOW>;
@group(0) @binding(6) var<uniform> w2: array<vec4<f32>, WINDOW>;
@group(0) @binding(7) var<uniform> w3: array<vec4<f32>, WINDOW>;

var<private> acc: array<vec4<f32>, MAX_OUT4>;

// One chunk per function: WGSL cannot pass a uniform array by pointer.
fn chunk0(base: u32, k0: u32, k1: u32) {
    for (var k = k0; k < k1; k = k + 1u) {
        let xk = x[base + k];
        let w = (k - k0) * rows.out4;
        for (var j = 0u; j < rows.out4; j = j + 1u) {
            acc[j] = acc[j] + xk * w0[w + j];
        }
    }
}

fn chunk1(base: u32, k0: u32, k1: u32) {
    for (var k = k0; k < k1; k = k + 1u) {
        let xk = x[base + k];
        let w = (k - k0) * rows.out4;
        for (var j = 0u; j < rows.out4; j = j + 1u) {
            acc[j] = acc[j] + xk * w1[w + j];
        }
    }
}

fn chunk2(base: u32, k0: u32, k1: u32) {
    for (var k = k0; k < k1; k = k + 1u) {
        let xk = x[base + k];
        let w = (k - k0) * rows.out4;
        for (var j = 0u; j < rows.out4; j = j + 1u) {
            acc[j] = acc[j] + xk * w2[w + j];
        }
    }
}

fn chunk3(base: u32, k0: u32, k1: u32) {
    for (var k = k0; k < k1; k = k + 1u) {
        let xk = x[base + k];
        let w = (k - k0) * rows.out4;
        for (var j = 0u; j < rows.out4; j = j + 1u) {
            acc[j] = acc[j] + xk * w3[w + j];
        }
    }
}

@compute @workgroup_size(WG_SIZE)
fn forward_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
    let m = rows.member;
    let begin = rows.n_batch * local_block_start(m, rows.local_slots, rows.n_members);
    let end = rows.n_batch * local_block_start(m + 1u, rows.local_slots, rows.n_members);
    let r = begin + gid.x;
    if (r >= end) {
        return;
    }
    for (var j = 0u; j < rows.out4; j = j + 1u) {
        acc[j] = vec4<f32>(0.0);
    }
    let base = r * rows.in_dim;
    let rpc = rows.rows_per_chunk;
    chunk0(base, 0u, min(rpc, rows.in_dim));
    if (rows.in_dim > rpc) {
        chunk1(base, rpc, min(2u * rpc, rows.in_dim));
    }
    if (rows.in_dim > 2u * rpc) {
        chunk2(base, 2u * rpc, min(3u * rpc, rows.in_dim));
    }
    if (rows.in_dim > 3u * rpc) {
        chunk3(base, 3u * rpc, min(4u * rpc, rows.in_dim));
    }
    let out_dim = rows.out_dim;
    for (var o = 0u; o < out_dim; o = o + 1u) {
        var v = acc[o / 4u][o % 4u] + bias[m * out_dim + o];
        if (rows.activation == 1u) {
            v = v / (1.0 + exp(-v));
        }
        y[r * out_dim + o] = v;
    }
}
