//! Counter-based randomness: the CPU twin of the Philox4x32-10 generator, the uniform and
//! normal transforms and the keyed Feistel permutation in `shaders/common.wgsl`. The 32-bit
//! words match the GPU bit for bit; transforms are computed in f64 here (the GPU's f32
//! transcendentals differ by a few ulp).

/// Philox4x32-10 of counter `ctr` under `key`.
pub fn philox(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = ctr;
    let mut k = key;
    for _ in 0..10 {
        let p0 = 0xD251_1F53u64 * c[0] as u64;
        let p1 = 0xCD9E_8D57u64 * c[2] as u64;
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
        k = [k[0].wrapping_add(0x9E37_79B9), k[1].wrapping_add(0xBB67_AE85)];
    }
    c
}

/// The seed as the Philox key.
pub fn key_of(seed: u64) -> [u32; 2] {
    [seed as u32, (seed >> 32) as u32]
}

/// Uniform in (0, 1) from the top 24 bits (WGSL `u01`).
pub fn u01(x: u32) -> f64 {
    ((x >> 8) as f64 + 0.5) / 16_777_216.0
}

/// Two standard normals (WGSL `box_muller`).
pub fn box_muller(a: u32, b: u32) -> (f64, f64) {
    let r = (-2.0 * u01(a).ln()).sqrt();
    let theta = std::f64::consts::TAU * u01(b);
    (r * theta.cos(), r * theta.sin())
}

/// Fourth counter word (WGSL `tag`).
pub fn tag(purpose: u32, iteration: u32, sub: u32) -> u32 {
    (purpose << 28) | ((iteration & 0xfff) << 16) | (sub & 0xffff)
}

/// Attempts before the truncated normal falls back to clamping (WGSL `MAX_TRUNCATION_ATTEMPTS`).
pub const MAX_TRUNCATION_ATTEMPTS: u32 = 8;

/// Standard normal truncated at ±2 (WGSL `truncated_normal`).
pub fn truncated_normal(elem: u32, b: u32, call: u32, iteration: u32, key: [u32; 2]) -> f64 {
    let mut z = 0.0;
    for attempt in 0..MAX_TRUNCATION_ATTEMPTS {
        let w = philox([elem, b, call, tag(super::purpose::SAMPLE, iteration, attempt)], key);
        let (z0, z1) = box_muller(w[0], w[1]);
        if z0.abs() <= 2.0 {
            return z0;
        }
        if z1.abs() <= 2.0 {
            return z1;
        }
        z = z1;
    }
    z.clamp(-2.0, 2.0)
}

/// Half the bit width of the Feistel domain for `n` values (WGSL `feistel_half_bits`).
pub fn feistel_half_bits(n: u32) -> u32 {
    let mut bits = 2u32;
    while bits < 32 && (1u64 << bits) < n as u64 {
        bits += 2;
    }
    bits / 2
}

/// Keyed bijection of `[0, n)` (WGSL `permute_index`).
pub fn permute_index(j: u32, n: u32, half: u32, ctr_hi: [u32; 3], key: [u32; 2]) -> u32 {
    let mask = (1u32 << half) - 1;
    let mut x = j;
    loop {
        let mut left = x >> half;
        let mut right = x & mask;
        for round in 0..4u32 {
            let f = philox([right | (round << 24), ctr_hi[0], ctr_hi[1], ctr_hi[2]], key)[0] & mask;
            let next_right = left ^ f;
            left = right;
            right = next_right;
        }
        x = (left << half) | right;
        if x < n {
            return x;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn philox_matches_random123_known_answers() {
        // Known-answer vectors of Random123 (kat_vectors: philox4x32_10).
        assert_eq!(philox([0, 0, 0, 0], [0, 0]), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
        assert_eq!(philox([0xffffffff; 4], [0xffffffff; 2]), [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]);
        assert_eq!(
            philox([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    #[test]
    fn permutation_is_a_bijection_for_awkward_sizes() {
        for n in [1u32, 2, 3, 7, 63, 65, 350, 1000] {
            let half = feistel_half_bits(n);
            let mut seen = vec![false; n as usize];
            for j in 0..n {
                let p = permute_index(j, n, half, [1, 2, 3], [9, 10]);
                assert!(p < n);
                assert!(!seen[p as usize], "n={n}: {p} hit twice");
                seen[p as usize] = true;
            }
        }
    }

    #[test]
    fn truncated_normal_stays_within_two_sigma_with_unit_scale_statistics() {
        let n = 20000;
        let z: Vec<f64> = (0..n).map(|i| truncated_normal(i, 0, 0, 0, [1, 2])).collect();
        assert!(z.iter().all(|v| v.abs() <= 2.0));
        let mean = z.iter().sum::<f64>() / n as f64;
        let var = z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
        // Variance of N(0,1) truncated at ±2 is 0.7737; standard error of the mean ≈ 0.0062.
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 0.7737).abs() < 0.03, "var {var}");
    }
}
