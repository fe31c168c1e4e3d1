// mlp_coop_net.wgsl — the whole ensemble network in one dispatch on tensor cores
// (`forward_coop`, after mlp_coop.wgsl): the planner's network with `mlp_kernel = coop16`.
//
// Bindings (group 0)
//   0 net     : FusedParams (uniform)  as mlp_fused_net.wgsl, but w_off[l] counts f16 values
//                                      in the padded weights (mlp_coop.wgsl)
//   1 x       : array<f32> [rows, dims[0]]            input rows, member-major (kernels/mod.rs "Slots")
//   2 weights : array<f16>  the padded, transposed weights (mlp_coop.wgsl)
//   3 biases  : array<f32>  every layer's [E, out] biases, concatenated (layer l from b_off[l])
//   4 y       : array<f32> [rows, dims[n_layers]]     output rows from net.y_off (store_hidden is not read)
//
// Dispatch: (ceil(rows of the largest member block / 16), members) (kernels::mlp_coop).
// CPU reference: kernels::mlp_coop::reference::network_f16_f64 (f16-rounded operands, f64 sums).

@group(0) @binding(0) var<uniform> net: FusedParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weights: array<f16>;
@group(0) @binding(3) var<storage, read> biases: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

fn hidden_write(i: u32, v: f32) {
    y[i] = v;
}

@compute @workgroup_size(NS * SG)
fn forward_coop(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
    @builtin(subgroup_id) subgroup: u32,
) {
    // The device runs NS subgroups per workgroup (CoopShape: one subgroup size, NS·SG
    // invocations); the clamp makes every index below provably in range all the same.
    let sid = min(subgroup, NS - 1u);
    let block = coop_block(wg);
    let r0 = block.x;
    let n_rows = block.y;
    // The block's inputs as f16; rows past the member's block and columns past the input read
    // as zero.
    let in0 = coop_dim(0u);
    for (var i = li; i < 16u * AW; i = i + NS * SG) {
        let r = i / AW;
        let k = i % AW;
        var v = 0.0;
        if (r < n_rows && k < in0) {
            v = x[(r0 + r) * in0 + k];
        }
        act[i] = f16(v);
    }
    workgroupBarrier();
    coop_layers(wg.y, r0, n_rows, li, sid);
}
