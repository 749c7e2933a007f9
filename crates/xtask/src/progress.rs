//! Where a long benchmark is: an `indicatif` bar on stderr when it is a
//! terminal (the tables go to stdout, so a redirected report stays clean),
//! otherwise one `[i/n] step` line on stderr per step, for CI logs.

use indicatif::{ProgressBar, ProgressStyle};

/// `n` steps, announced one by one.
pub struct Steps {
    bar: ProgressBar,
    n: u64,
    at: u64,
}

impl Steps {
    pub fn new(n: u64) -> Steps {
        let bar = ProgressBar::new(n);
        if let Ok(style) =
            ProgressStyle::with_template("[{bar:20}] {pos}/{len} {elapsed} {wide_msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        Steps { bar, n, at: 0 }
    }

    /// The previous step is done; `what` starts now.
    pub fn next(&mut self, what: &str) {
        if self.at > 0 {
            self.bar.inc(1);
        }
        self.at += 1;
        if self.bar.is_hidden() {
            eprintln!("[{}/{}] {what}", self.at, self.n);
        } else {
            self.bar.set_message(what.to_string());
        }
    }
}

impl Drop for Steps {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
