// mlp_coop.wgsl — the whole ensemble network in one dispatch on tensor cores: mlp_fused.wgsl's
// model step with every layer's product done as 16×16×16 cooperative-matrix multiply-adds (f16
// inputs, f32 accumulation; `EXPERIMENTAL_COOPERATIVE_MATRIX` with `SHADER_F16` and `SUBGROUP`).
// Activations and weights are rounded to f16 before each product; bias, SiLU and the outputs
// stay f32.
//
// This part holds the overrides, the workgroup memory and `coop_layers`; the part after it owns
// the entry point, the bindings `net` (FusedParams, w_off[l] counting f16 values in the padded
// weights below), `weights` (array<f16>) and `biases`, and the hook `hidden_write(i, v)` that
// the last layer's outputs go through (unless LAST_TO_PROD):
//   mlp_coop_net.wgsl        `forward_coop`, the network as one dispatch;
//   model_step_coop.wgsl     `model_step_coop`, a whole model step of the planner.
//   weights : layer l, member m from w_off[l] + m·P(in)·Q(out): [Q(out), P(in)] row-major (the
//             transposed weights: each B tile is column-major, the layout the B operand is read
//             in), P(d) = d rounded up to 16, Q(d) = d rounded up to 16·NS, zero where k ≥ in or
//             c ≥ out
//   biases  : every layer's [E, out] biases, concatenated (layer l from b_off[l])
//
// Dispatch (by the entry point's part): (ceil(rows of the largest member block / 16), members). A workgroup is NS subgroups
// of SG invocations (the device's one subgroup size) and takes 16 consecutive rows of member m
// (one row tile: half the workgroup memory of two, so twice the workgroups fit on a
// multiprocessor, which measured faster on an H200 than sharing each B tile between two row
// tiles): `act` holds them as f16, row-major with row stride AW and zeros in the padding. Per
// layer, subgroup s computes the column tiles s, s + NS, … of the whole groups of NS tiles,
// four at a time with the A tile from `act` and the B tiles read straight from `weights`, into
// `prod` (f32, row stride PW); one or two tiles left over are split by K among the subgroups
// (their partial products summed when read), three are a group with a padding tile; then bias
// and SiLU make the next `act`. Every loop's trip count is uniform, so every cooperative
// operation is in uniform control flow (naga requires it); the subgroups differ only in the
// addresses they load and store.
// The overrides are chosen by the host (kernels::mlp_coop::CoopShape).
// CPU reference: kernels::mlp_coop::reference::network_f16_f64 (f16-rounded operands, f64 sums).
// The module starts with `enable f16; enable wgpu_cooperative_matrix;` (kernels::mlp_coop::
// DIRECTIVES), put before common.wgsl by the host: WGSL allows directives only at the top.

// Invocations per subgroup (the device's one subgroup size).
override SG: u32 = 32u;
// Row stride of `act`: the widest padded layer input + 8 (an odd multiple of 8: see
// kernels::mlp_coop::BANK_SKEW).
override AW: u32 = 216u;
// Row stride of `prod`: the widest layer output rounded up to 16·NS, + 8.
override PW: u32 = 264u;
// Subgroups per workgroup (kernels::mlp_coop::SUBGROUPS).
const NS: u32 = 4u;
// Column groups per pass of a layer's K loop, 3 or 4 (kernels::mlp_coop::CoopShape): 3 where no
// layer has more than three whole groups (the PETS network's 200-wide layers, 12 of their 13
// tiles), so that no pass loads a fourth B tile only to leave it unused.
override GP: u32 = 4u;
// The last layer's outputs (bias added) stay in `prod`, prod[r · PW + c], instead of going
// through hidden_write: the model step reads them there.
override LAST_TO_PROD: bool = false;

var<workgroup> act: array<f16, 16u * AW>;
var<workgroup> prod: array<f32, 16u * PW>;
// Column groups left in the current layer (coop_layers).
var<workgroup> coop_left: u32;
// The current layer's leftover column tiles when they are split by K (1 or 2), else 0.
var<workgroup> coop_split: u32;

fn coop_dim(i: u32) -> u32 {
    return net.dims[i / 4u][i % 4u];
}

fn pad16(d: u32) -> u32 {
    return (d + 15u) / 16u * 16u;
}

// A layer's output width in the packed weights: whole groups of NS column tiles.
fn pad_cols(d: u32) -> u32 {
    return (d + 16u * NS - 1u) / (16u * NS) * (16u * NS);
}

fn coop_silu(v: f32) -> f32 {
    return v * (1.0 / (1.0 + exp(-v)));
}

// The block's rows of member m (A workgroup past its member's rows, n_rows = 0, runs on zeros
// and stores nothing: the cooperative operations stay in uniform control flow.)
fn coop_block(wg: vec3<u32>) -> vec2<u32> {
    let m = wg.y;
    let start = net.n_batch * local_block_start(m, net.local_slots, net.n_members);
    let end = net.n_batch * local_block_start(m + 1u, net.local_slots, net.n_members);
    let r0 = start + wg.x * 16u;
    return vec2<u32>(r0, select(0u, min(16u, end - r0), r0 < end));
}

// Every layer on the block of rows [r0, r0 + n_rows) of member m, whose f16 inputs the caller
// has put in `act` (row-major, stride AW, zeros past the rows and the input) before a barrier;
// invocation li of subgroup sid. Call in uniform control flow: it ends with a barrier, after
// which, with LAST_TO_PROD, prod[r · PW + c] holds output c of row r.
fn coop_layers(m: u32, r0: u32, n_rows: u32, li: u32, sid: u32) {
    let rows = 16u;
    let n_inv = NS * SG;
    let n_layers = net.n_layers;
    for (var l = 0u; l < n_layers; l = l + 1u) {
        let din = coop_dim(l);
        let dout = coop_dim(l + 1u);
        let pin = pad16(din);
        let qout = pad_cols(dout);
        let w0 = net.w_off[l / 4u][l % 4u] + m * pin * qout;
        let b0 = net.b_off[l / 4u][l % 4u] + m * dout;
        let nk = pin / 16u;
        // The layer's pad16(dout) / 16 column tiles: `full` whole groups of NS, then `rem`
        // left over. One or two leftover tiles (200 outputs: 13 tiles, 12 + 1; every layer of
        // at most 16 outputs: 0 + 1) are split by K instead of padded to a group: subgroup sid
        // takes leftover tile sid % rem over the K tiles of its part sid / rem (NS / rem parts),
        // and the parts are summed after the barrier. Three leftover tiles are one group with a
        // padding tile. For the PETS network that is 137 multiply-adds per subgroup and model
        // step instead of 173 (43 instead of 52 per hidden layer).
        let nt = pad16(dout) / 16u;
        let full = nt / NS;
        let rem = nt % NS;
        if (li == 0u) {
            coop_split = select(0u, rem, rem == 1u || rem == 2u);
        }
        let split = workgroupUniformLoad(&coop_split);
        // The layer's whole column groups (NS tiles each; subgroup sid takes tile sid of
        // each), GP at a time: per K tile, one A tile and GP independent B tiles feed GP
        // accumulators. A group past the layer's last repeats group g0 (the loads stay
        // unconditional, in range and independent), skips its multiply-adds and stores
        // nothing. The groups left reach every invocation through `coop_left` and
        // workgroupUniformLoad, which naga's uniformity analysis knows to be uniform (it takes
        // every local variable, the loop counters included, as non-uniform, and cooperative
        // operations must stay in uniform control flow).
        let ng = select(qout / (16u * NS), full, split > 0u);
        for (var g0 = 0u; g0 < ng; g0 = g0 + GP) {
            if (li == 0u) {
                coop_left = ng - g0;
            }
            let left = workgroupUniformLoad(&coop_left);
            let col0 = (g0 * NS + sid) * 16u;
            let has1 = left > 1u;
            let has2 = left > 2u;
            let has3 = (GP == 4u) & (left > 3u);
            let col1 = select(col0, col0 + 16u * NS, has1);
            let col2 = select(col0, col0 + 32u * NS, has2);
            let col3 = select(col0, col0 + 48u * NS, has3);
            var c0 = coop_mat16x16<f32, C>();
            var c1 = coop_mat16x16<f32, C>();
            var c2 = coop_mat16x16<f32, C>();
            var c3 = coop_mat16x16<f32, C>();
            for (var kt = 0u; kt < nk; kt = kt + 1u) {
                let i0 = w0 + col0 * pin + kt * 16u;
                let i1 = w0 + col1 * pin + kt * 16u;
                let i2 = w0 + col2 * pin + kt * 16u;
                let i3 = w0 + col3 * pin + kt * 16u;
                let w_0 = coopLoad<coop_mat16x16<f16, B>>(&weights[i0], pin);
                let w_1 = coopLoad<coop_mat16x16<f16, B>>(&weights[i1], pin);
                let w_2 = coopLoad<coop_mat16x16<f16, B>>(&weights[i2], pin);
                var w_3 = w_0;
                if (GP == 4u) {
                    w_3 = coopLoad<coop_mat16x16<f16, B>>(&weights[i3], pin);
                }
                let ai = kt * 16u;
                let a = coopLoadT<coop_mat16x16<f16, A>>(&act[ai], AW);
                c0 = coopMultiplyAdd(a, w_0, c0);
                if (has1) {
                    c1 = coopMultiplyAdd(a, w_1, c1);
                }
                if (has2) {
                    c2 = coopMultiplyAdd(a, w_2, c2);
                }
                if (has3) {
                    c3 = coopMultiplyAdd(a, w_3, c3);
                }
            }
            // (`let` indices: naga's SPIR-V writer fails on an inline one in coopStore.)
            let p0 = col0;
            coopStoreT(c0, &prod[p0], PW);
            if (has1) {
                let p1 = col1;
                coopStoreT(c1, &prod[p1], PW);
            }
            if (has2) {
                let p2 = col2;
                coopStoreT(c2, &prod[p2], PW);
            }
            if (has3) {
                let p3 = col3;
                coopStoreT(c3, &prod[p3], PW);
            }
        }
        // The split leftover tiles: part sid / split of tile full·NS + sid % split, its K
        // tiles [part·kq, part·kq + kq). A K tile past the input multiplies A tile 0 by the
        // first padding tile's weights, which are zero (split < NS, so that tile exists), and
        // adds nothing: the loop's trip count stays the same for every subgroup. Subgroup
        // sid's partial goes to column tile full·NS + sid of `prod`, the group's slots (for
        // one tile, the tile's own slot and the three padding slots after it).
        if (split > 0u) {
            let parts = NS / split;
            let part = sid / split;
            let kq = (nk + parts - 1u) / parts;
            let tcol = (full * NS + sid % split) * 16u;
            let zcol = (full * NS + split) * 16u;
            var cs = coop_mat16x16<f32, C>();
            for (var j = 0u; j < kq; j = j + 1u) {
                let kt = part * kq + j;
                let in_k = kt < nk;
                let ib = select(w0 + zcol * pin, w0 + tcol * pin + kt * 16u, in_k);
                let ia = select(0u, kt * 16u, in_k);
                let ws = coopLoad<coop_mat16x16<f16, B>>(&weights[ib], pin);
                let a = coopLoadT<coop_mat16x16<f16, A>>(&act[ia], AW);
                cs = coopMultiplyAdd(a, ws, cs);
            }
            let ps = (full * NS + sid) * 16u;
            coopStoreT(cs, &prod[ps], PW);
        }
        // Every product is in `prod` and every read of this layer's `act` is done.
        workgroupBarrier();
        let last = l + 1u == n_layers;
        // One column per invocation (its bias read once), down every row; the padding columns
        // up to the next multiple of 16 become zeros for the next layer's K tiles.
        let pout = pad16(dout);
        for (var c = li; c < pout; c = c + n_inv) {
            let valid = c < dout;
            var bias = 0.0;
            if (valid) {
                bias = biases[b0 + c];
            }
            // A split tile's column sums its parts, 16·split columns apart.
            var n_parts = 1u;
            if (split > 0u && c >= full * NS * 16u) {
                n_parts = NS / split;
            }
            for (var r = 0u; r < rows; r = r + 1u) {
                if (valid) {
                    var s = prod[r * PW + c];
                    for (var q = 1u; q < n_parts; q = q + 1u) {
                        s = s + prod[r * PW + c + q * split * 16u];
                    }
                    let v = s + bias;
                    if (last && LAST_TO_PROD) {
                        prod[r * PW + c] = v;
                    } else if (last) {
                        if (r < n_rows) {
                            hidden_write(net.y_off + (r0 + r) * dout + c, v);
                        }
                    } else {
                        act[r * AW + c] = f16(coop_silu(v));
                    }
                } else if (!last) {
                    act[r * AW + c] = f16(0.0);
                }
            }
        }
        workgroupBarrier();
    }
}
