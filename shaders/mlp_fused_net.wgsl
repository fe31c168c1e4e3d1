// mlp_fused_net.wgsl — the whole ensemble network in one dispatch (`forward_fused`, after
// mlp_fused.wgsl): the planner's network on GPUs, the trainer's forward pass and, with
// BACKWARD, its chain of input gradients.
//
// Bindings (group 0)
//   0 net     : FusedParams (uniform)  sizes, the widths and where each product's weights and
//                                      results are
//   1 x       : array<f32>  forward: input rows [rows, dims[0]], member-major (kernels/mod.rs "Slots");
//                           backward: the forward pass's values (mlp_fused.wgsl's hidden_read)
//   2 weights : array<f32>  every layer's [E, in, out] weights, concatenated
//   3 biases  : array<f32>  every layer's [E, out] biases, concatenated; forward only
//   4 y       : array<f32>  forward: output rows [rows, dims[n_layers]] from net.y_off (written
//                           after the layers, from `act`); with net.store_hidden also a copy of
//                           the input rows from net.in_off and what mlp_fused.wgsl writes through
//                           hidden_write; with net.transpose every layer l but the first's
//                           weights transposed, [E, dims[l + 1], dims[l]] from net.t_off[l] (the
//                           backward chain's weights). backward: the gradient at the output
//                           [rows, dims[0]] read from y_off, mlp_fused.wgsl's hidden_write
//
// Dispatch: (ceil(rows of the largest member block / ROWS), members) (kernels::mlp_fused).
// CPU reference: kernels::mlp_fused::reference::network_f64; backward: train::reference.

@group(0) @binding(0) var<uniform> net: FusedParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weights: array<f32>;
@group(0) @binding(3) var<storage, read> biases: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

fn hidden_read(i: u32) -> f32 {
    return x[i];
}

fn hidden_write(i: u32, v: f32) {
    y[i] = v;
}

@compute @workgroup_size(FUSED_WG)
fn forward_fused(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) li: u32) {
    if (!BACKWARD && net.transpose == 1u) {
        // The trainer's forward pass: this workgroup's share of member wg.y's weights of every
        // layer but the first, transposed for the backward chain (consecutive invocations read
        // consecutive weights; the member's workgroups, empty blocks included, split them).
        let m = wg.y;
        for (var l = 1u; l < net.n_layers; l = l + 1u) {
            let din = dim(l);
            let dout = dim(l + 1u);
            let n = din * dout;
            let src = net.w_off[l / 4u][l % 4u] + m * n;
            let dst = net.t_off[l / 4u][l % 4u] + m * n;
            for (var e = wg.x * FUSED_WG + li; e < n; e = e + nwg.x * FUSED_WG) {
                y[dst + (e % dout) * din + e / dout] = weights[src + e];
            }
        }
    }
    let block = fused_block(wg);
    let r0 = block.x;
    let n_rows = block.y;
    if (n_rows == 0u) {
        return;
    }
    // The block's inputs, four rows per vec4; rows past the member's block read as zero. The
    // trainer's forward pass keeps a copy of them for the weight gradients.
    let in0 = dim(0u);
    let copy = !BACKWARD && net.store_hidden == 1u;
    for (var i = li; i < ROWS4 * in0; i = i + FUSED_WG) {
        let q = i / in0;
        let k = i % in0;
        var v = vec4<f32>(0.0);
        for (var e = 0u; e < 4u; e = e + 1u) {
            let r = 4u * q + e;
            if (r < n_rows) {
                if (BACKWARD) {
                    v[e] = y[el(net.y_off, r0 + r, in0, k)];
                } else {
                    v[e] = x[(r0 + r) * in0 + k];
                    if (copy) {
                        y[el(net.in_off, r0 + r, in0, k)] = v[e];
                    }
                }
            }
        }
        act[act_at(k, q)] = v;
    }
    workgroupBarrier();
    fused_layers(wg.y, r0, n_rows, li);
    if (!BACKWARD) {
        // The outputs, consecutive invocations on consecutive addresses.
        let dout = dim(net.n_layers);
        for (var i = li; i < n_rows * dout; i = i + FUSED_WG) {
            let r = i / dout;
            let c = i % dout;
            y[el(net.y_off, r0 + r, dout, c)] = act[act_at(c, r / 4u)][r % 4u];
        }
    }
}
