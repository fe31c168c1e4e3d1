// model_step_coop.wgsl — the model step (model_step.wgsl) on mlp_coop.wgsl's tensor-core
// layers (f16 operands, f32 accumulation): entry `model_step_coop`. The block's inputs go into
// `act` as f16, the layers keep the last one's outputs in `prod` (LAST_TO_PROD), finish_step
// samples and advances. No early return: the cooperative operations need uniform control flow.
// Bindings: model_step.wgsl's, and
//   group 1, 7 weights : the padded, transposed f16 weights (mlp_coop.wgsl)
// Dispatch: (ceil(rows of the largest member block / 16), members) (kernels::model_step).
// CPU reference: planner::reference::ensemble_returns_f64 (whole rollouts, f32 weights: the
// plans differ by the f16 rounding, as with mlp_coop_net.wgsl).

@group(1) @binding(7) var<storage, read> weights: array<f16>;

fn step_out(c: u32, r: u32) -> f32 {
    return prod[r * PW + c];
}

fn step_set(c: u32, r: u32, v: f32) {
    prod[r * PW + c] = v;
}

@compute @workgroup_size(NS * SG)
fn model_step_coop(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
    @builtin(subgroup_id) subgroup: u32,
) {
    let sid = min(subgroup, NS - 1u);
    let block = coop_block(wg);
    let r0 = block.x;
    let n_rows = block.y;
    let in_dim = params.in_dim;
    for (var t = params.t; t < steps_end(); t = t + 1u) {
        let cur = step_inputs(t);
        for (var i = li; i < 16u * AW; i = i + NS * SG) {
            let r = i / AW;
            let k = i % AW;
            var v = 0.0;
            if (r < n_rows && k < in_dim) {
                v = x0[cur + (r0 + r) * in_dim + k];
            }
            act[i] = f16(v);
        }
        workgroupBarrier();
        coop_layers(wg.y, r0, n_rows, li, sid);
        finish_step(r0, n_rows, li, NS * SG, t);
    }
}
