// model_step_fused.wgsl — the model step (model_step.wgsl) on mlp_fused.wgsl's f32 layers:
// entry `model_step`. The block's inputs go into `act` four rows per vec4, the layers keep
// the last one's outputs there, finish_step samples and advances.
// Bindings: model_step.wgsl's, and
//   group 1, 7 weights : every layer's [E, in, out] weights, concatenated (mlp_fused.wgsl)
// Dispatch: (ceil(rows of the largest member block / ROWS), members) (kernels::model_step).
// CPU reference: planner::reference::ensemble_returns_f64 (whole rollouts).

@group(1) @binding(7) var<storage, read> weights: array<f32>;

// Output c of row r of the block (act holds four rows per vec4).
fn step_out(c: u32, r: u32) -> f32 {
    return act[act_at(c, r / 4u)][r % 4u];
}

// Only finish_step's invocation for the four rows of r's quad writes this vec4.
fn step_set(c: u32, r: u32, v: f32) {
    act[act_at(c, r / 4u)][r % 4u] = v;
}

@compute @workgroup_size(FUSED_WG)
fn model_step(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let block = fused_block(wg);
    let r0 = block.x;
    let n_rows = block.y;
    if (n_rows == 0u) {
        return;
    }
    let in_dim = params.in_dim;
    for (var t = params.t; t < steps_end(); t = t + 1u) {
        let cur = step_inputs(t);
        // The block's inputs, four rows per vec4, zero past the block.
        for (var i = li; i < ROWS4 * in_dim; i = i + FUSED_WG) {
            let q = i / in_dim;
            let k = i % in_dim;
            var v = vec4<f32>(0.0);
            for (var e = 0u; e < 4u; e = e + 1u) {
                let r = 4u * q + e;
                if (r < n_rows) {
                    v[e] = x0[cur + (r0 + r) * in_dim + k];
                }
            }
            act[act_at(k, q)] = v;
        }
        workgroupBarrier();
        fused_layers(wg.y, r0, n_rows, li);
        finish_step(r0, n_rows, li, FUSED_WG, t);
    }
}
