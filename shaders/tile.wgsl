// tile.wgsl — the 64×64 register-tiled product shared by mlp.wgsl and mlp_grads.wgsl: a
// workgroup of 16×16 invocations computes C[p, q] = Σ_k A[p, k] B[k, q] for one 64×64 tile,
// K in chunks of 16 staged in workgroup memory, 4×4 results per invocation.
//
// The including module defines the operands: storage arrays `a_src` and `b_src` and the index
// maps `a_index(mode, p, k)` and `b_index(mode, m, k, q)` (m: ensemble member), `mode` being
// whatever the module passes to `tile_product` to select its layout; and the read_write array
// `c_dst` that `store_block` writes.
// CPU reference: kernels::mlp::reference::layer_f64 (the forward product);
// train::reference::loss_and_grads_f64 (the backward ones).

const TILE_M: u32 = 64u;
const TILE_N: u32 = 64u;
const TILE_K: u32 = 16u;

var<workgroup> a_tile: array<f32, 1024>; // [TILE_K][TILE_M]
var<workgroup> b_tile: array<f32, 1024>; // [TILE_K][TILE_N]

// One invocation's 4×4 block of a 64×64 output tile: row i of the block is `r<i>`, column j its
// component j. Four vec4 values rather than an array indexed inside loops, so that the block
// stays in registers whatever runtime checks the module is compiled with (an indexed private
// array is spilled to local memory by some drivers once bounds checks or loop counters are
// added).
struct Block {
    r0: vec4<f32>,
    r1: vec4<f32>,
    r2: vec4<f32>,
    r3: vec4<f32>,
}

fn block_row(t: Block, i: u32) -> vec4<f32> {
    switch i {
        case 0u: { return t.r0; }
        case 1u: { return t.r1; }
        case 2u: { return t.r2; }
        default: { return t.r3; }
    }
}

// One chunk's operands as this invocation stages them: component e of `a` is A[p0 + pp, k0 + kk]
// and of `b` B[k0 + bk, q0 + qq] for idx = li + 256·e (zero outside the ranges). Four named
// components rather than an array indexed in a loop, for the same reason as `Block`.
struct Chunk {
    a: vec4<f32>,
    b: vec4<f32>,
}

fn a_value(mode: u32, p0: u32, p_end: u32, k0: u32, k_end: u32, idx: u32) -> f32 {
    let pp = idx / TILE_K;
    let kk = idx % TILE_K;
    if (p0 + pp < p_end && k0 + kk < k_end) {
        return a_src[a_index(mode, p0 + pp, k0 + kk)];
    }
    return 0.0;
}

fn b_value(mode: u32, m: u32, q0: u32, q_end: u32, k0: u32, k_end: u32, idx: u32) -> f32 {
    let bk = idx / TILE_N;
    let qq = idx % TILE_N;
    if (q0 + qq < q_end && k0 + bk < k_end) {
        return b_src[b_index(mode, m, k0 + bk, q0 + qq)];
    }
    return 0.0;
}

fn load_chunk(mode: u32, m: u32, p0: u32, p_end: u32, q0: u32, q_end: u32, k0: u32, k_end: u32, li: u32) -> Chunk {
    return Chunk(
        vec4<f32>(
            a_value(mode, p0, p_end, k0, k_end, li),
            a_value(mode, p0, p_end, k0, k_end, li + 256u),
            a_value(mode, p0, p_end, k0, k_end, li + 512u),
            a_value(mode, p0, p_end, k0, k_end, li + 768u),
        ),
        vec4<f32>(
            b_value(mode, m, q0, q_end, k0, k_end, li),
            b_value(mode, m, q0, q_end, k0, k_end, li + 256u),
            b_value(mode, m, q0, q_end, k0, k_end, li + 512u),
            b_value(mode, m, q0, q_end, k0, k_end, li + 768u),
        ),
    );
}

// Element idx of a chunk into the workgroup tiles: a_tile as [TILE_K][TILE_M], b_tile as
// [TILE_K][TILE_N].
fn stage(idx: u32, a: f32, b: f32) {
    a_tile[(idx % TILE_K) * TILE_M + idx / TILE_K] = a;
    b_tile[idx] = b;
}

// The 64×64 tile of A·B at (p0, q0) for rows p < p_end, columns q < q_end and k in [k0, k_end);
// every invocation of the workgroup must call it (it synchronises the workgroup). Invocation
// (lid.x, lid.y) owns rows p0 + 4·lid.y + i and columns q0 + lid.x + 16·j, i, j in 0..4.
// The next chunk's global loads are issued before this chunk's multiply-adds (software
// pipelining: their latency overlaps the arithmetic instead of following it); the sums are the
// same, in the same order. An invocation whose rows (or columns) all lie past p_end (q_end)
// skips the multiply-adds, since no caller stores its block, but still stages its share of each
// chunk and meets every barrier: in a tile that holds the last 8 of 200 rows, or the 5 inputs
// of a first layer, 7 of the 8 subgroups of 32 skip them (on 32-wide subgroups the skip follows
// lid.y, whole subgroups at a time).
fn tile_product(mode: u32, m: u32, p0: u32, p_end: u32, q0: u32, q_end: u32, k_begin: u32, k_end: u32,
                lid: vec3<u32>, li: u32) -> Block {
    var t = Block(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    let live = p0 + lid.y * 4u < p_end && q0 + lid.x < q_end;
    var next = load_chunk(mode, m, p0, p_end, q0, q_end, k_begin, k_end, li);
    for (var k0 = k_begin; k0 < k_end; k0 = k0 + TILE_K) {
        stage(li, next.a.x, next.b.x);
        stage(li + 256u, next.a.y, next.b.y);
        stage(li + 512u, next.a.z, next.b.z);
        stage(li + 768u, next.a.w, next.b.w);
        workgroupBarrier();
        next = load_chunk(mode, m, p0, p_end, q0, q_end, k0 + TILE_K, k_end, li);
        if (live) {
            for (var kk = 0u; kk < TILE_K; kk = kk + 1u) {
                let ar = kk * TILE_M + lid.y * 4u;
                let br = kk * TILE_N + lid.x;
                let a = vec4<f32>(a_tile[ar], a_tile[ar + 1u], a_tile[ar + 2u], a_tile[ar + 3u]);
                let b = vec4<f32>(b_tile[br], b_tile[br + 16u], b_tile[br + 32u], b_tile[br + 48u]);
                t.r0 = t.r0 + a.x * b;
                t.r1 = t.r1 + a.y * b;
                t.r2 = t.r2 + a.z * b;
                t.r3 = t.r3 + a.w * b;
            }
        }
        workgroupBarrier();
    }
    return t;
}

// Writes the block `t` of `tile_product` at (p0, q0) into c_dst as part of the row-major
// [p_end, q_end] matrix that starts at `base` (rows and columns past the ends skipped).
fn store_block(t: Block, base: u32, p0: u32, p_end: u32, q0: u32, q_end: u32, lid: vec3<u32>) {
    for (var i = 0u; i < 4u; i = i + 1u) {
        let p = p0 + lid.y * 4u + i;
        let r = block_row(t, i);
        for (var j = 0u; j < 4u; j = j + 1u) {
            let q = q0 + lid.x + 16u * j;
            if (p < p_end && q < q_end) {
                c_dst[base + p * q_end + q] = r[j];
            }
        }
    }
}
