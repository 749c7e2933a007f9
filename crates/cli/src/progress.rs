//! Progress on long work through `indicatif`: a bar on stderr when it is a
//! terminal, and otherwise one plain line per step, so that CI logs and
//! pipes stay readable. Bars draw at most ~10 times a second.

use indicatif::{ProgressBar, ProgressStyle};

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// A bar of `len` bytes (rate and ETA) labelled `what`; without a terminal
/// it prints `what` once instead.
pub fn bytes(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if bar.is_hidden() {
        eprintln!("{what} ({len} bytes)");
    } else {
        bar.set_style(style(
            "{msg} [{bar:24}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        ));
        bar.set_message(what.to_string());
    }
    bar
}

/// A bar of `len` steps labelled `what` (units named in `unit`, e.g.
/// "tensors"); without a terminal it prints `what` once instead.
pub fn steps(len: u64, what: &str, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if bar.is_hidden() {
        eprintln!("{what}");
    } else {
        bar.set_style(style(&format!(
            "{{msg}} [{{bar:24}}] {{pos}}/{{len}} {unit} {{elapsed}}"
        )));
        bar.set_message(what.to_string());
    }
    bar
}

/// A spinner for work of unknown length; without a terminal it prints
/// `what` once instead.
pub fn spinner(what: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    if bar.is_hidden() {
        eprintln!("{what}");
    } else {
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(what.to_string());
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
    }
    bar
}
