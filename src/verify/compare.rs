//! Comparing device results with a reference: element-wise within a tolerance, or bit for bit,
//! and the seeded inputs every case draws.

use super::Tol;

/// The outcome of comparing device results with a reference.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    /// Values compared.
    pub values: usize,
    /// Largest |gpu − cpu|.
    pub max_abs: f64,
    /// Largest |gpu − cpu| / |cpu| over values with |cpu| > 0.
    pub max_rel: f64,
    /// Largest error relative to its tolerance.
    pub worst: f64,
    /// Every value within tolerance and finite.
    pub passed: bool,
    /// The worst value, or what did not match.
    pub detail: String,
}

impl Comparison {
    /// Adds `other`'s values; the worst value (or the first failure) is kept as the detail.
    pub(in crate::verify) fn merge(&mut self, other: Comparison) {
        self.values += other.values;
        self.max_abs = self.max_abs.max(other.max_abs);
        self.max_rel = self.max_rel.max(other.max_rel);
        if other.worst > self.worst || (!other.passed && self.passed) {
            self.detail = other.detail.clone();
            self.worst = other.worst;
        }
        self.passed &= other.passed;
    }

    /// Nothing compared yet: passed.
    pub(in crate::verify) fn start() -> Self {
        Self { passed: true, ..Default::default() }
    }
}

/// Element-wise comparison within `tol`; a non-finite value on either side fails.
pub(in crate::verify) fn compare(what: &str, gpu: &[f32], cpu: &[f64], tol: Tol) -> Comparison {
    let mut c = Comparison::start();
    if gpu.len() != cpu.len() {
        c.passed = false;
        c.detail = format!("{what}: {} values vs {} in the reference", gpu.len(), cpu.len());
        return c;
    }
    c.values = gpu.len();
    for (i, (&g, &r)) in gpu.iter().zip(cpu).enumerate() {
        if !(g.is_finite() && r.is_finite()) {
            c.passed = false;
            c.worst = f64::INFINITY;
            c.detail = format!("{what}[{i}]: gpu {g} vs cpu {r} (non-finite)");
            continue;
        }
        let err = (g as f64 - r).abs();
        c.max_abs = c.max_abs.max(err);
        if r != 0.0 {
            c.max_rel = c.max_rel.max(err / r.abs());
        }
        let ratio = err / (tol.abs + tol.rel * r.abs());
        if ratio > c.worst {
            c.worst = ratio;
            c.detail = format!("{what}[{i}]: gpu {g} vs cpu {r}");
        }
        if ratio > 1.0 {
            c.passed = false;
        }
    }
    c
}

/// Bit-for-bit comparison.
pub(in crate::verify) fn compare_exact<T: PartialEq + std::fmt::Debug>(what: &str, gpu: &[T], cpu: &[T]) -> Comparison {
    let mut c = Comparison::start();
    c.values = cpu.len();
    if gpu.len() != cpu.len() {
        c.passed = false;
        c.detail = format!("{what}: {} values vs {} in the reference", gpu.len(), cpu.len());
        return c;
    }
    if let Some(i) = gpu.iter().zip(cpu).position(|(a, b)| a != b) {
        c.passed = false;
        c.worst = f64::INFINITY;
        c.max_abs = f64::NAN;
        c.detail = format!("{what}[{i}]: gpu {:?} vs cpu {:?}", gpu[i], cpu[i]);
    }
    c
}

/// Deterministic pseudo-random values in [-scale, scale).
pub fn seeded(n: usize, seed: u64, scale: f64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// `v` rounded to f32.
pub(in crate::verify) fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|x| *x as f32).collect()
}
