// mlp_coop.wgsl — the whole ensemble network in one dispatch on tensor cores: mlp_fused.wgsl's
// model step with every layer's product done as 16×16×16 cooperative-matrix multiply-adds (f16
// inputs, f32 accumulation; `EXPERIMENTAL_COOPERATIVE_MATRIX` with `SHADER_F16`). Activations
// and weights are rounded to f16 before each product; bias, SiLU and the outputs stay f32.
//
// Bindings (group 0)
//   0 net     : FusedParams (uniform)  as mlp_fused.wgsl, but w_off[l] counts f16 values in
//                                      the padded weights below
//   1 x       : array<f32> [rows, dims[0]]            input rows, member-major (kernels/mod.rs "Slots")
//   2 weights : array<f16>  layer l, member m from w_off[l] + m·P(in)·P(out): [P(in), P(out)]
//                           row-major, P(d) = d rounded up to 16, zero where k ≥ in or c ≥ out
//   3 biases  : array<f32>  every layer's [E, out] biases, concatenated (layer l from b_off[l])
//   4 y       : array<f32> [rows, dims[n_layers]]     output rows
//
// Dispatch: (ceil(rows of the largest member block / ROWS), members), ROWS = 16·RT. A workgroup
// is one subgroup (SG invocations = the device's subgroup size), so every cooperative operation
// is in workgroup-uniform control flow. Workgroup (·, m) takes ROWS consecutive rows of member
// m: `act` holds them as f16, row-major with row stride WIDTH16 and zeros in the padding. Per
// layer and 16-column tile, the tile's weights for every K are staged in `panel`, and each row
// tile's product (A from `act`, B from `panel`) goes to `prod` (f32); then bias and SiLU make
// the next `act`.
// The overrides are chosen by the host (kernels::mlp_coop::CoopShape).
// CPU reference: kernels::mlp_coop::reference::network_f16_f64 (f16-rounded operands, f64 sums).
// The module starts with `enable f16; enable wgpu_cooperative_matrix;` (kernels::mlp_coop::
// DIRECTIVES), put before common.wgsl by the host: WGSL allows directives only at the top.

// Row tiles of 16 per workgroup.
override RT: u32 = 2u;
// Invocations per workgroup: one subgroup.
override SG: u32 = 32u;
// Widest padded layer width (input or output), a multiple of 16.
override WIDTH16: u32 = 208u;
// Most K tiles of any layer: the widest padded layer input / 16 (the panel's height / 16).
override KT: u32 = 13u;

@group(0) @binding(0) var<uniform> net: FusedParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weights: array<f16>;
@group(0) @binding(3) var<storage, read> biases: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

var<workgroup> act: array<f16, 16u * RT * WIDTH16>;
var<workgroup> prod: array<f32, 16u * RT * WIDTH16>;
// One column tile's weights for every K: [KT · 16, 16] row-major.
var<workgroup> panel: array<f16, KT * 256u>;

fn coop_dim(i: u32) -> u32 {
    return net.dims[i / 4u][i % 4u];
}

fn pad16(d: u32) -> u32 {
    return (d + 15u) / 16u * 16u;
}

fn coop_silu(v: f32) -> f32 {
    return v * (1.0 / (1.0 + exp(-v)));
}

@compute @workgroup_size(SG)
fn forward_coop(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let m = wg.y;
    let start = net.n_batch * local_block_start(m, net.local_slots, net.n_members);
    let end = net.n_batch * local_block_start(m + 1u, net.local_slots, net.n_members);
    let rows = 16u * RT;
    let r0 = start + wg.x * rows;
    // A workgroup past its member's rows runs on zeros and stores nothing: no early return, so
    // the cooperative operations stay in uniform control flow (naga requires it).
    let n_rows = select(0u, min(rows, end - r0), r0 < end);
    // The block's inputs as f16; rows past the member's block and columns past the input read
    // as zero.
    let in0 = coop_dim(0u);
    for (var i = li; i < rows * WIDTH16; i = i + SG) {
        let r = i / WIDTH16;
        let k = i % WIDTH16;
        var v = 0.0;
        if (r < n_rows && k < in0) {
            v = x[(r0 + r) * in0 + k];
        }
        act[i] = f16(v);
    }
    workgroupBarrier();
    let n_layers = net.n_layers;
    for (var l = 0u; l < n_layers; l = l + 1u) {
        let din = coop_dim(l);
        let dout = coop_dim(l + 1u);
        let pin = pad16(din);
        let pout = pad16(dout);
        let w0 = net.w_off[l / 4u][l % 4u] + m * pin * pout;
        let b0 = net.b_off[l / 4u][l % 4u] + m * dout;
        let nk = pin / 16u;
        for (var ct = 0u; ct < pout / 16u; ct = ct + 1u) {
            // The column tile's weights, all K, into `panel` with independent loads (their
            // latency overlaps), then the products read both operands from workgroup memory.
            for (var i = li; i < pin * 16u; i = i + SG) {
                panel[i] = weights[w0 + (i / 16u) * pout + ct * 16u + i % 16u];
            }
            workgroupBarrier();
            for (var rt = 0u; rt < RT; rt = rt + 1u) {
                var acc = coop_mat16x16<f32, C>();
                for (var kt = 0u; kt < nk; kt = kt + 1u) {
                    let ai = rt * 16u * WIDTH16 + kt * 16u;
                    let bi = kt * 256u;
                    let a = coopLoadT<coop_mat16x16<f16, A>>(&act[ai], WIDTH16);
                    let b = coopLoadT<coop_mat16x16<f16, B>>(&panel[bi], 16u);
                    acc = coopMultiplyAdd(a, b, acc);
                }
                let pi = rt * 16u * WIDTH16 + ct * 16u;
                coopStoreT(acc, &prod[pi], WIDTH16);
            }
            // The panel is read by every product before the next column tile overwrites it.
            workgroupBarrier();
        }
        // Every product is in `prod` and every read of this layer's `act` is done.
        workgroupBarrier();
        let last = l + 1u == n_layers;
        for (var i = li; i < rows * pout; i = i + SG) {
            let r = i / pout;
            let c = i % pout;
            if (c < dout) {
                let v = prod[r * WIDTH16 + c] + biases[b0 + c];
                if (last) {
                    if (r < n_rows) {
                        y[(r0 + r) * dout + c] = v;
                    }
                } else {
                    act[r * WIDTH16 + c] = f16(coop_silu(v));
                }
            } else if (!last) {
                act[r * WIDTH16 + c] = f16(0.0);
            }
        }
        workgroupBarrier();
    }
}
