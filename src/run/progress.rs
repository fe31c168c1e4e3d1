//! The terminal's progress bar for a run (on stderr), shared by the command line and the Python
//! package.

/// A bar of `total` units with a message.
pub struct ProgressBar {
    bar: indicatif::ProgressBar,
}

impl ProgressBar {
    /// A bar of `total` units.
    pub fn new(total: u64) -> Self {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] [{bar:30}] {msg}")
                .expect("the template is a literal")
                .progress_chars("=> "),
        );
        Self { bar }
    }

    /// Shows `position` units done and `message`.
    pub fn set(&self, position: u64, message: String) {
        self.bar.set_position(position);
        self.bar.set_message(message);
    }

    /// Removes the bar.
    pub fn finish(self) {
        self.bar.finish_and_clear();
    }
}
