// mlp_grads.wgsl — the weight and bias gradients of every layer of the ensemble in one dispatch
// (the trainer's fused path): dW_l[m, i, o] = Σ_(r of m) x_l[r, i] δ_l[r, o] and
// db_l[m, o] = Σ_(r of m) δ_l[r, o] for every layer l and member m, with tile.wgsl's product:
// the same sums in the same order as mlp.wgsl's `backward_weights`, one layer per dispatch there.
//
// Bindings (group 0)
//   0 grads_params : GradsParams (uniform)  sizes, every layer's widths and where its operands are
//   1 a_src  : array<f32>  every layer's input rows x_l [rows, dims[l]] from x_off[l]
//   2 b_src  : array<f32>  every layer's output gradient δ_l [rows, dims[l + 1]] from d_off[l]
//   3 c_dst  : array<f32>  gradients: dW_l [E, dims[l], dims[l + 1]] from w_off[l], db_l [E, dims[l + 1]] from b_off[l]
//
// Dispatch: (tiles of the widest layer input + 1, tiles of the widest layer output,
// members × layers); workgroup (x, y, l·E + m) takes the 64×64 tile (x, y) of layer l's dW for
// member m, or, in the column x = tiles of dims[l], the bias sums of its 64 outputs (one
// invocation per output summing the rows in order); workgroups past layer l's tiles return.
// Rows are member-major (kernels/mod.rs "Slots").
// CPU reference: train::reference::loss_and_grads_f64.

struct GradsParams {
    n_batch: u32,
    local_slots: u32,
    n_members: u32,
    n_layers: u32,
    // dims[l] = input width of layer l; dims[n_layers] = output width. Index i: [i / 4][i % 4].
    dims: array<vec4<u32>, 3>,
    x_off: array<vec4<u32>, 2>,
    d_off: array<vec4<u32>, 2>,
    w_off: array<vec4<u32>, 2>,
    b_off: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<uniform> grads_params: GradsParams;
@group(0) @binding(1) var<storage, read> a_src: array<f32>;
@group(0) @binding(2) var<storage, read> b_src: array<f32>;
@group(0) @binding(3) var<storage, read_write> c_dst: array<f32>;

// This workgroup's layer: its widths and where its operands are, set once by `weight_grads`
// (read per element by the index maps below, so looked up in the uniform only once).
var<private> in_w: u32;
var<private> out_w: u32;
var<private> x0_off: u32;
var<private> d0_off: u32;

fn gdim(i: u32) -> u32 {
    return grads_params.dims[i / 4u][i % 4u];
}

// tile.wgsl's operands (`mode` unused: the layer is this workgroup's): A[p, k] = x_l[row k,
// feature p], B[k, q] = δ_l[row k, output q].
fn a_index(mode: u32, p: u32, k: u32) -> u32 {
    return x0_off + k * in_w + p;
}

fn b_index(mode: u32, m: u32, k: u32, q: u32) -> u32 {
    return d0_off + k * out_w + q;
}

@compute @workgroup_size(16, 16, 1)
fn weight_grads(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
                @builtin(local_invocation_index) li: u32) {
    let e = grads_params.n_members;
    let l = wg.z / e;
    let m = wg.z % e;
    let in_dim = gdim(l);
    let out_dim = gdim(l + 1u);
    in_w = in_dim;
    out_w = out_dim;
    x0_off = grads_params.x_off[l / 4u][l % 4u];
    d0_off = grads_params.d_off[l / 4u][l % 4u];
    let p0 = wg.x * TILE_M;
    let q0 = wg.y * TILE_N;
    let in_tiles = (in_dim + TILE_M - 1u) / TILE_M;
    // Uniform branches: the whole workgroup takes them.
    if (l >= grads_params.n_layers || q0 >= out_dim || wg.x > in_tiles) {
        return;
    }
    let r_begin = grads_params.n_batch * local_block_start(m, grads_params.local_slots, e);
    let r_end = grads_params.n_batch * local_block_start(m + 1u, grads_params.local_slots, e);
    if (wg.x == in_tiles) {
        let q = q0 + li;
        if (li < TILE_N && q < out_dim) {
            var s = 0.0;
            for (var r = r_begin; r < r_end; r = r + 1u) {
                s = s + b_src[b_index(l, m, r, q)];
            }
            c_dst[grads_params.b_off[l / 4u][l % 4u] + m * out_dim + q] = s;
        }
        return;
    }
    let acc = tile_product(l, m, p0, in_dim, q0, out_dim, r_begin, r_end, lid, li);
    store_block(acc, grads_params.w_off[l / 4u][l % 4u] + m * in_dim * out_dim, p0, in_dim, q0, out_dim, lid);
}
