// reduce.wgsl — a workgroup sum in a fixed order (the same tree on every run and adapter, so a
// reduction is deterministic), for the reductions of loss.wgsl and adam.wgsl. Put after
// common.wgsl and before the part that uses it.
//
// workgroup_sum(t, v) must be called by every invocation of a workgroup of RED_SIZE invocations
// (t = local_invocation_index) in uniform control flow: it has barriers. It returns the sum of
// every invocation's v to each of them. Indices: t < RED_SIZE and t + s < RED_SIZE for each
// half-width s, so every access to `red` is in range.
// CPU reference: kernels::loss::reference and kernels::adam::reference (the losses, bound
// gradients and gradient norms these sums give, in f64).

const RED_SIZE: u32 = 256u;

var<workgroup> red: array<vec2<f32>, RED_SIZE>;

fn workgroup_sum(t: u32, v: vec2<f32>) -> vec2<f32> {
    red[t] = v;
    workgroupBarrier();
    for (var s = RED_SIZE / 2u; s > 0u; s = s >> 1u) {
        if (t < s) {
            red[t] = red[t] + red[t + s];
        }
        workgroupBarrier();
    }
    let total = red[0];
    // A later call overwrites `red`: every invocation reads the total first.
    workgroupBarrier();
    return total;
}
