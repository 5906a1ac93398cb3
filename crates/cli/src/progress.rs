//! A long task's progress on stderr: an `indicatif` bar redrawn in place on a terminal, else a
//! plain line now and then, so that logs and pipes get whole lines instead of redraws.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The bar's width in characters, on a terminal and in plain lines alike.
const WIDTH: u64 = 20;

pub enum Progress {
    /// On a terminal: one bar, redrawn.
    Bar(ProgressBar),
    /// Elsewhere: a line when the text changed and `every` has passed since the last one, and
    /// always the first and the last.
    Lines { every: Duration, last: Option<(Instant, String)> },
}

impl Progress {
    /// A bar when stderr is a terminal, else plain lines at most once per `plain_every`.
    pub fn on_stderr(plain_every: Duration) -> Progress {
        if std::io::stderr().is_terminal() {
            Progress::bar(ProgressDrawTarget::stderr())
        } else {
            Progress::Lines { every: plain_every, last: None }
        }
    }

    /// `[#######-------------] {message}`: the bar filled with the share done.
    pub fn bar(target: ProgressDrawTarget) -> Progress {
        let style = ProgressStyle::with_template(&format!("[{{bar:{WIDTH}}}] {{msg}}"))
            .expect("a valid template")
            .progress_chars("#-");
        Progress::Bar(ProgressBar::with_draw_target(None, target).with_style(style))
    }

    /// Shows `done` of `total` with `message` beside; `last` ends the display.
    pub fn show(&mut self, done: u64, total: u64, message: String, last: bool) {
        match self {
            Progress::Bar(bar) => {
                bar.set_length(total);
                bar.set_position(done.min(total));
                if last {
                    // Left as it is (a canceled task's bar is not full), not `finish`ed.
                    bar.abandon_with_message(message);
                } else {
                    bar.set_message(message);
                }
            }
            Progress::Lines { every, last: shown } => {
                let line = plain_line(done, total, &message);
                let due = match shown {
                    None => true,
                    Some((at, text)) => last || (at.elapsed() >= *every && *text != line),
                };
                if due {
                    eprintln!("{line}");
                    *shown = Some((Instant::now(), line));
                }
            }
        }
    }

    /// A line of its own (a warning), above the bar on a terminal.
    pub fn note(&self, text: &str) {
        match self {
            Progress::Bar(bar) => bar.suspend(|| eprintln!("{text}")),
            Progress::Lines { .. } => eprintln!("{text}"),
        }
    }
}

/// The line written without a terminal: the bar drawn with `#` and `-`, then the message. An
/// empty task is shown as done.
pub fn plain_line(done: u64, total: u64, message: &str) -> String {
    let filled = (done * WIDTH).checked_div(total).unwrap_or(WIDTH).min(WIDTH) as usize;
    format!("[{}{}] {message}", "#".repeat(filled), "-".repeat(WIDTH as usize - filled))
}

#[cfg(test)]
mod tests {
    use super::*;
    use indicatif::InMemoryTerm;

    #[test]
    fn a_terminal_gets_the_same_bar_as_a_plain_line() {
        let term = InMemoryTerm::new(4, 80);
        let mut p = Progress::bar(ProgressDrawTarget::term_like(Box::new(term.clone())));
        p.show(14, 40, "12/40 sent  2 failed".into(), false);
        p.show(14, 40, "12/40 sent  2 failed  canceled".into(), true);
        let expected = "[#######-------------] 12/40 sent  2 failed  canceled";
        assert_eq!(term.contents().trim_end(), expected);
        assert_eq!(plain_line(14, 40, "12/40 sent  2 failed  canceled"), expected);
        assert_eq!(plain_line(0, 0, "x"), "[####################] x");
        assert_eq!(plain_line(0, 3, "x"), "[--------------------] x");
    }
}
