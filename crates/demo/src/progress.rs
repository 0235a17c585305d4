//! Progress of a demo run: on a terminal one line that updates in place (the
//! phase, a bar and the time left, or a spinner and the time spent on an
//! open-ended wait), with the run's milestones printed above it; elsewhere
//! (CI, logs) plain lines.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Plain lines of a timed phase come this often when not on a terminal.
const LINE_EVERY: Duration = Duration::from_secs(30);

/// Where progress goes.
#[derive(Debug)]
pub struct Progress {
    /// The in-place line, on a terminal.
    bar: Option<ProgressBar>,
}

impl Progress {
    /// An in-place line when standard output is a terminal, plain lines
    /// otherwise.
    pub fn on_stdout() -> Self {
        if std::io::stdout().is_terminal() {
            let bar = ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(120));
            Progress { bar: Some(bar) }
        } else {
            Self::lines()
        }
    }

    /// Plain lines only.
    pub fn lines() -> Self {
        Progress { bar: None }
    }

    /// A milestone: printed as its own line (above the in-place one).
    pub fn step(&self, msg: &str) {
        match &self.bar {
            Some(bar) => bar.println(format!("  .. {msg}")),
            None => println!("  .. {msg}"),
        }
    }

    /// An open-ended wait: a spinner with the phase and the time spent.
    pub fn waiting(&self, phase: &str) {
        self.step(phase);
        if let Some(bar) = &self.bar {
            bar.set_style(spinner_style());
            bar.set_length(0);
            bar.set_position(0);
            bar.reset_elapsed();
            bar.set_message(short(phase));
        }
    }

    /// A phase of known length: a bar with the time left, for `d`.
    pub async fn countdown(&self, phase: &str, d: Duration) {
        let end = Instant::now() + d;
        match &self.bar {
            Some(bar) => {
                bar.set_style(bar_style());
                bar.set_length(d.as_secs().max(1));
                bar.set_position(0);
                bar.set_message(phase.to_owned());
                while Instant::now() < end {
                    let left = end.saturating_duration_since(Instant::now());
                    bar.set_position(d.saturating_sub(left).as_secs());
                    bar.set_prefix(format!("{:>3} s left", left.as_secs()));
                    tokio::time::sleep(left.min(Duration::from_millis(250))).await;
                }
                bar.set_position(d.as_secs());
                bar.set_style(spinner_style());
            }
            None => {
                while Instant::now() < end {
                    let left = end.saturating_duration_since(Instant::now());
                    println!("  .. {phase}: {:>3} s left", left.as_secs());
                    tokio::time::sleep(left.min(LINE_EVERY)).await;
                }
            }
        }
    }

    /// Ends the in-place line (before the summary is printed).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The first clause of a milestone, as the in-place line's phase.
fn short(msg: &str) -> String {
    msg.split([':', ';'])
        .next()
        .unwrap_or(msg)
        .trim()
        .to_owned()
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("  {spinner} {msg} ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("  {spinner} {msg} [{bar:30}] {prefix}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_is_the_first_clause() {
        assert_eq!(short("migrating: device state only"), "migrating");
        assert_eq!(short("home after 3 ms; 2 dirty pages"), "home after 3 ms");
        assert_eq!(short("booting"), "booting");
    }

    #[tokio::test]
    async fn plain_countdown_ends_on_time() {
        let p = Progress::lines();
        let t = Instant::now();
        p.countdown("test phase", Duration::from_millis(50)).await;
        assert!(t.elapsed() >= Duration::from_millis(50));
    }
}
