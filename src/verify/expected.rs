//! Known problems of some adapters: a case (or a GPU test) lists the failures it is expected to
//! have where, and why. Such a case is still run: a failure with the listed message is reported
//! as expected, any other failure still fails, and a pass fails too (so that the entry goes when
//! the driver is fixed).

use crate::gpu::AdapterSummary;

/// A failure expected of a case (or a GPU test) on the adapters it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedFailure {
    /// The backend, if only one.
    pub backend: Option<wgpu::Backend>,
    /// Case-insensitive substring of the adapter name, if only some.
    pub adapter: Option<&'static str>,
    /// Case-insensitive substring of the driver's name and version, if only some.
    pub driver: Option<&'static str>,
    /// Substring the failure's detail (a case) or message (a test) must contain.
    pub message: &'static str,
    /// Why, with a link where there is one.
    pub reason: &'static str,
}

impl ExpectedFailure {
    /// Whether the entry is about `adapter`: every criterion it gives matches.
    pub fn applies_to(&self, adapter: &AdapterSummary) -> bool {
        let contains = |text: &str, part: &str| text.to_lowercase().contains(&part.to_lowercase());
        self.backend.is_none_or(|b| format!("{b:?}").to_lowercase() == adapter.backend)
            && self.adapter.is_none_or(|a| contains(&adapter.name, a))
            && self.driver.is_none_or(|d| contains(&adapter.driver, d))
    }

    /// Whether a failure saying `message` on `adapter` is this expected one.
    pub fn excuses(&self, adapter: &AdapterSummary, message: &str) -> bool {
        self.applies_to(adapter) && message.contains(self.message)
    }
}

/// What an outcome means given the failures expected of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// Passed, and no failure is expected on this adapter.
    Passed,
    /// Failed, and no expected failure matches this adapter and message.
    Failed,
    /// Failed as this entry expects.
    ExpectedFailure(&'a ExpectedFailure),
    /// Passed, but this entry expects a failure on this adapter: the entry should go.
    PassedButListed(&'a ExpectedFailure),
}

impl Verdict<'_> {
    /// Passed, or failed as expected.
    pub fn ok(&self) -> bool {
        matches!(self, Verdict::Passed | Verdict::ExpectedFailure(_))
    }

    /// The entry that decided the verdict, if any.
    pub fn entry(&self) -> Option<&ExpectedFailure> {
        match self {
            Verdict::ExpectedFailure(e) | Verdict::PassedButListed(e) => Some(e),
            Verdict::Passed | Verdict::Failed => None,
        }
    }
}

/// The verdict on an outcome on `adapter`: `failure` is `None` for a pass, else the failure's
/// detail or message; `expected` are the failures listed for the case or test.
pub fn judge<'a>(expected: &'a [ExpectedFailure], adapter: &AdapterSummary, failure: Option<&str>) -> Verdict<'a> {
    match failure {
        None => match expected.iter().find(|e| e.applies_to(adapter)) {
            Some(e) => Verdict::PassedButListed(e),
            None => Verdict::Passed,
        },
        Some(message) => match expected.iter().find(|e| e.excuses(adapter, message)) {
            Some(e) => Verdict::ExpectedFailure(e),
            None => Verdict::Failed,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn llvmpipe() -> AdapterSummary {
        AdapterSummary {
            name: "llvmpipe (LLVM 15.0.6, 256 bits)".into(),
            backend: "vulkan".into(),
            driver: "llvmpipe Mesa 22.3.6 (LLVM 15.0.6)".into(),
            device_type: "Cpu".into(),
        }
    }

    const ENTRY: ExpectedFailure = ExpectedFailure {
        backend: Some(wgpu::Backend::Vulkan),
        adapter: Some("LLVMpipe"),
        driver: Some("mesa 22.3"),
        message: "could not run",
        reason: "a driver bug",
    };

    #[test]
    fn a_matching_failure_is_excused_and_anything_else_is_not() {
        let a = llvmpipe();
        let expected = [ENTRY];
        assert_eq!(judge(&expected, &a, Some("could not run: a shader")), Verdict::ExpectedFailure(&ENTRY));
        assert!(judge(&expected, &a, Some("could not run: a shader")).ok());
        // Another failure on the listed adapter is a failure.
        assert_eq!(judge(&expected, &a, Some("y[3]: gpu 1 vs cpu 2")), Verdict::Failed);
        // The listed failure on another driver, adapter or backend is a failure.
        let newer = AdapterSummary { driver: "llvmpipe Mesa 25.0.7".into(), ..llvmpipe() };
        assert_eq!(judge(&expected, &newer, Some("could not run")), Verdict::Failed);
        let gpu = AdapterSummary { name: "NVIDIA H100".into(), ..llvmpipe() };
        assert_eq!(judge(&expected, &gpu, Some("could not run")), Verdict::Failed);
        let gl = AdapterSummary { backend: "gl".into(), ..llvmpipe() };
        assert_eq!(judge(&expected, &gl, Some("could not run")), Verdict::Failed);
        assert!(!judge(&expected, &gl, Some("could not run")).ok());
    }

    #[test]
    fn a_pass_where_a_failure_is_listed_is_not_ok_and_elsewhere_it_is() {
        let a = llvmpipe();
        let verdict = judge(&[ENTRY], &a, None);
        assert_eq!(verdict, Verdict::PassedButListed(&ENTRY));
        assert!(!verdict.ok());
        assert_eq!(verdict.entry().map(|e| e.reason), Some("a driver bug"));
        let gpu = AdapterSummary { name: "NVIDIA H100".into(), ..llvmpipe() };
        assert_eq!(judge(&[ENTRY], &gpu, None), Verdict::Passed);
        assert_eq!(judge(&[], &a, None), Verdict::Passed);
        assert_eq!(judge(&[], &a, Some("anything")), Verdict::Failed);
    }

    #[test]
    fn criteria_left_out_match_every_adapter() {
        let any = ExpectedFailure { backend: None, adapter: None, driver: None, message: "", reason: "" };
        assert!(any.applies_to(&llvmpipe()));
        assert!(any.excuses(&llvmpipe(), "whatever failed"));
    }
}
