// mlp_fused.wgsl — the whole ensemble network on a block of rows in one workgroup: every
// layer, with the activations kept in workgroup memory between layers (the planner's model step
// and the trainer's forward pass), or, with BACKWARD, the trainer's chain of input gradients
// through every layer.
// Forward: the maths of mlp.wgsl's `forward` applied layer after layer (SiLU after every layer
// but the last), without reading the hidden activations back from global memory (the planner
// does not write them at all; the trainer has them written for its backward pass).
// Backward: the maths of mlp.wgsl's `backward_input` applied layer after layer from the last:
// δ_in[r, i] = (Σ_o δ_out[r, o] W[m, i, o]) · SiLU′(pre[r, i]), every δ written out for the
// weight gradients.
//
// This part holds the overrides, the block's workgroup memory `act` and `fused_layers`; the
// part after it owns the entry point, the bindings `net` (FusedParams), `weights` and `biases`
// and the hooks `hidden_read(i)` / `hidden_write(i, v)` through which the layers reach the
// stored values below:
//   mlp_fused_net.wgsl  `forward_fused`, the network as one dispatch (hooks: its x and y);
//   model_step_fused.wgsl  `model_step`, a whole model step of the planner.
// Forward, the last layer's outputs stay in `act` as every hidden layer's do (the entry writes
// them out or uses them): on llvmpipe, the global stores of the last layer inside the layer
// loop made the whole network kernel twice as slow.
//
// Stored values (through the hooks)
//   hidden_read   backward: the forward pass's values (pre-activations at pre_off[j])
//   hidden_write  forward, with net.store_hidden: every hidden layer's pre-activations and
//                 activations [rows, dims[l + 1]] from net.pre_off[l] / net.act_off[l] (the
//                 trainer's forward pass). backward: product j's result [rows, dims[j + 1]]
//                 from act_off[j]
//   weights       every product's [E, K, N] weights, product j's from w_off[j] (forward: the
//                 layers' [E, in, out]; backward: the forward pass's transposed copy)
//   biases        every layer's [E, out] biases, concatenated (layer l from b_off[l]); forward only
//
// Backward products run the forward layers from the last to the second: product j is forward
// layer L − 1 − j (L forward layers), K = its output width dims[j], N = its input width
// dims[j + 1], its weight (k, c) = W[m, c, k] read from the copy the forward pass wrote
// transposed (mlp_fused_net.wgsl, net.transpose), so that consecutive invocations read
// consecutive weights as the forward pass does: reading W itself, each invocation's four
// consecutive k were K floats from its neighbour's, 32 cache lines per load instruction
// (host: kernels::mlp_fused::FusedParams::backward_chain).
//
// Dispatch (by the entry point's part): (ceil(rows of the largest member block / ROWS),
// members). Workgroup (·, m) takes ROWS = 4·ROWS4 consecutive rows of member m. Its FUSED_WG invocations form SPLIT groups of
// LANES = FUSED_WG / SPLIT (a multiple of 32): invocation (h, 32·s + u), u < 32, owns output
// columns 32·(COLS·s + j) + u, j < COLS, for the row quads [h·RQ, (h + 1)·RQ) with
// RQ = ROWS4 / SPLIT, as COLS·RQ vec4 accumulators (vec4 = four rows, one column). So each run
// of 32 invocations (a subgroup on NVIDIA GPUs) owns COLS·32 consecutive columns, and a run
// skips the products of its column groups j that lie wholly past a layer's outputs: with
// 200 outputs on 128 lanes × 2 columns the last run computes one group instead of two, and for
// the 8 outputs of a last layer only the first run of each group runs at all (before, every
// invocation ran every product, multiplying zero weights).
// The block's activations live in `act` as act[k·ACT_STRIDE + q] = feature k of rows 4q..4q+3
// (`act_at`): the invocations of a group read the same element at once (a broadcast), and one
// weight W[m, k, c] feeds 4·RQ multiply-adds. ACT_STRIDE is ROWS4 made odd: the layers' stores
// (consecutive invocations, consecutive columns) then fall on different banks. With a stride of
// ROWS4 = 8 vec4 (128 B) every invocation of a subgroup stored to the same four of the 32
// banks: NVIDIA serves a 16-byte store a quarter-subgroup at a time, so each quarter took 8
// passes, 32 per store instead of 4; with an odd stride its 8 invocations fall on 8 different
// bank quads. The host sets ACT_STRIDE (kernels::mlp_fused::act_stride, which its memory
// accounting uses); the default here is the same.
// The overrides are chosen by the host (kernels::mlp::FusedShape) from the network's widths and
// the device's workgroup-memory limit.
// CPU reference: kernels::mlp_fused::reference::network_f64; backward: train::reference.

// Largest number of layers (twin: kernels::mlp::FUSED_MAX_LAYERS).
const FUSED_MAX_LAYERS: u32 = 8u;
// Largest number of vec4 accumulators per invocation (twin: kernels::mlp::FUSED_MAX_ACC).
const FUSED_MAX_ACC: u32 = 16u;

// Most output columns per invocation (twin: kernels::mlp_fused::FUSED_MAX_COLS).
const FUSED_MAX_COLS: u32 = 4u;

// Rows per workgroup / 4.
override ROWS4: u32 = 8u;
// Output columns per invocation.
override COLS: u32 = 1u;
// Invocations per workgroup.
override FUSED_WG: u32 = 256u;
// Groups of invocations that split the rows (FUSED_WG and ROWS4 are multiples of it).
override SPLIT: u32 = 1u;
// Widest product input or output (floats per row kept in workgroup memory).
override WIDTH: u32 = 256u;
// The input-gradient chain instead of the forward pass.
override BACKWARD: bool = false;

// Vec4 elements between features in `act` (set by the host: kernels::mlp_fused::act_stride).
override ACT_STRIDE: u32 = ROWS4 | 1u;

var<workgroup> act: array<vec4<f32>, WIDTH * ACT_STRIDE>;

// Index in `act` of feature k of row quad q.
fn act_at(k: u32, q: u32) -> u32 {
    return k * ACT_STRIDE + q;
}

fn dim(i: u32) -> u32 {
    return net.dims[i / 4u][i % 4u];
}

// Invocations per run, whose columns are consecutive (the header).
const COL_RUN: u32 = 32u;

// Column j < COLS of the invocation at `lane` of its group.
fn fused_col(lane: u32, j: u32) -> u32 {
    return COL_RUN * (COLS * (lane / COL_RUN) + j) + lane % COL_RUN;
}

// How many of the column groups j < COLS of `lane`'s run hold any of `dout` outputs (the same
// for the whole run).
fn fused_groups(lane: u32, dout: u32) -> u32 {
    let first = COL_RUN * COLS * (lane / COL_RUN);
    if (first >= dout) {
        return 0u;
    }
    return min(COLS, (dout - first + COL_RUN - 1u) / COL_RUN);
}

// Weights of K index k0 + i, i < 4, for each of the invocation's columns c: element
// w0 + k·N + c (N = dout); zero past the product's outputs or when k0 ≥ k_end, the end of the
// groups of 4.
fn load_weights4(w0: u32, k0: u32, k_end: u32, dout: u32, lane: u32) -> array<vec4<f32>, FUSED_MAX_COLS> {
    var w: array<vec4<f32>, FUSED_MAX_COLS>;
    for (var j = 0u; j < COLS; j = j + 1u) {
        let c = fused_col(lane, j);
        var v = vec4<f32>(0.0);
        if (c < dout && k0 < k_end) {
            let i = w0 + k0 * dout + c;
            v = vec4<f32>(weights[i], weights[i + dout], weights[i + 2u * dout], weights[i + 3u * dout]);
        }
        w[j] = v;
    }
    return w;
}

fn silu4(v: vec4<f32>) -> vec4<f32> {
    return v * (1.0 / (1.0 + exp(-v)));
}

// SiLU′ as mlp.wgsl's silu_grad.
fn silu_grad4(v: vec4<f32>) -> vec4<f32> {
    let s = 1.0 / (1.0 + exp(-v));
    return s * (1.0 + v * (1.0 - s));
}

// Element (row r0 + r, column c) of a [rows, width] region from `off`.
fn el(off: u32, r: u32, width: u32, c: u32) -> u32 {
    return off + r * width + c;
}

// The rows of workgroup wg: (first row, rows) of a block of member wg.y; no rows past the
// member's block.
fn fused_block(wg: vec3<u32>) -> vec2<u32> {
    let m = wg.y;
    let start = net.n_batch * local_block_start(m, net.local_slots, net.n_members);
    let end = net.n_batch * local_block_start(m + 1u, net.local_slots, net.n_members);
    let r0 = start + wg.x * 4u * ROWS4;
    if (r0 >= end) {
        return vec2<u32>(r0, 0u);
    }
    return vec2<u32>(r0, min(4u * ROWS4, end - r0));
}

// Every layer (forward, or the backward chain) on the block of rows [r0, r0 + n_rows) of
// member m, whose inputs the caller has put in `act` (act[act_at(k, q)] = feature k of rows
// 4q..4q+3, zero past n_rows) before a barrier. Call in uniform control flow: it ends with a
// barrier, after which, forward, `act` holds the last layer's outputs the same way.
fn fused_layers(m: u32, r0: u32, n_rows: u32, li: u32) {
    let lanes = FUSED_WG / SPLIT;
    let lane = li % lanes;
    let rq = ROWS4 / SPLIT;
    let q0 = li / lanes * rq;
    let n_layers = net.n_layers;
    for (var l = 0u; l < n_layers; l = l + 1u) {
        let din = dim(l);
        let dout = dim(l + 1u);
        let w0 = net.w_off[l / 4u][l % 4u] + m * din * dout;
        var acc: array<vec4<f32>, FUSED_MAX_ACC>;
        for (var a = 0u; a < COLS * rq; a = a + 1u) {
            acc[a] = vec4<f32>(0.0);
        }
        // The run's column groups with outputs (no barrier inside: a run may skip them all).
        let groups = fused_groups(lane, dout);
        if (groups > 0u) {
            // K in groups of 4 with the next group's weights loaded before this group's
            // multiply-adds (the loads' latency overlaps the arithmetic), then the remainder.
            let k4 = din / 4u * 4u;
            var next = load_weights4(w0, 0u, k4, dout, lane);
            for (var k0 = 0u; k0 < k4; k0 = k0 + 4u) {
                let cur = next;
                next = load_weights4(w0, k0 + 4u, k4, dout, lane);
                for (var kk = 0u; kk < 4u; kk = kk + 1u) {
                    for (var j = 0u; j < COLS; j = j + 1u) {
                        if (j < groups) {
                            let w = cur[j][kk];
                            for (var i = 0u; i < rq; i = i + 1u) {
                                acc[j * rq + i] = acc[j * rq + i] + act[act_at(k0 + kk, q0 + i)] * w;
                            }
                        }
                    }
                }
            }
            for (var k = k4; k < din; k = k + 1u) {
                // Constant bounds (unrolled, the accumulators stay in registers), as above.
                for (var j = 0u; j < COLS; j = j + 1u) {
                    let c = fused_col(lane, j);
                    if (j < groups) {
                        var w = 0.0;
                        if (c < dout) {
                            w = weights[w0 + k * dout + c];
                        }
                        for (var i = 0u; i < rq; i = i + 1u) {
                            acc[j * rq + i] = acc[j * rq + i] + act[act_at(k, q0 + i)] * w;
                        }
                    }
                }
            }
        }
        // Every invocation has read this layer's inputs before any overwrites them.
        workgroupBarrier();
        let last = l + 1u == n_layers;
        // Uniform choices. Forward: the last layer writes the output rows, the others their
        // activations to workgroup memory (and, for training, both values to y). Backward:
        // every product writes its gradient to y, all but the last also to workgroup memory.
        let store = BACKWARD || (!last && net.store_hidden == 1u);
        var pre0 = 0u;
        var act0 = 0u;
        if (store) {
            pre0 = net.pre_off[l / 4u][l % 4u];
            act0 = net.act_off[l / 4u][l % 4u];
        }
        for (var j = 0u; j < COLS; j = j + 1u) {
            let c = fused_col(lane, j);
            if (c < dout) {
                var b = 0.0;
                if (!BACKWARD) {
                    b = biases[net.b_off[l / 4u][l % 4u] + m * dout + c];
                }
                for (var i = 0u; i < rq; i = i + 1u) {
                    let q = q0 + i;
                    if (BACKWARD) {
                        var pre = vec4<f32>(0.0);
                        for (var e = 0u; e < 4u; e = e + 1u) {
                            let r = 4u * q + e;
                            if (r < n_rows) {
                                pre[e] = hidden_read(el(pre0, r0 + r, dout, c));
                            }
                        }
                        let d = acc[j * rq + i] * silu_grad4(pre);
                        for (var e = 0u; e < 4u; e = e + 1u) {
                            let r = 4u * q + e;
                            if (r < n_rows) {
                                hidden_write(el(act0, r0 + r, dout, c), d[e]);
                            }
                        }
                        if (!last) {
                            act[act_at(c, q)] = d;
                        }
                    } else {
                        let v = acc[j * rq + i] + b;
                        if (last) {
                            act[act_at(c, q)] = v;
                        } else {
                            let s = silu4(v);
                            act[act_at(c, q)] = s;
                            if (store) {
                                for (var e = 0u; e < 4u; e = e + 1u) {
                                    let r = 4u * q + e;
                                    if (r < n_rows) {
                                        hidden_write(el(pre0, r0 + r, dout, c), v[e]);
                                        hidden_write(el(act0, r0 + r, dout, c), s[e]);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        workgroupBarrier();
    }
}
