//! Progress on a terminal (the one module that uses indicatif): a bar over a suite's cases,
//! or a spinner over a fuzz run's scenarios. Nothing is drawn when stdout is not a
//! terminal (a CI log), where each case's block is printed as it comes.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar, or nothing where stdout is not a terminal.
#[derive(Debug)]
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// A bar over `len` cases.
    pub fn cases(len: usize) -> Progress {
        Progress::with(
            len as u64,
            "{bar:40} {pos}/{len} cases  {elapsed_precise}  {msg}",
        )
    }

    /// A spinner over scenarios, with their rate and a message.
    pub fn scenarios(len: u64) -> Progress {
        Progress::with(
            len,
            "{spinner} {pos} scenarios  {per_sec}  {elapsed_precise}  {msg}",
        )
    }

    fn with(len: u64, template: &str) -> Progress {
        Progress(std::io::stdout().is_terminal().then(|| {
            let bar = ProgressBar::new(len);
            bar.set_style(ProgressStyle::with_template(template).expect("a valid template"));
            bar
        }))
    }

    /// Prints a case's block above the bar (or plainly when there is none), and counts it.
    pub fn emit(&self, text: String) {
        match &self.0 {
            Some(bar) => {
                bar.suspend(|| print!("{text}"));
                bar.inc(1);
            }
            None => print!("{text}"),
        }
    }

    /// Sets the position and the message.
    pub fn set(&self, position: u64, message: String) {
        if let Some(bar) = &self.0 {
            bar.set_position(position);
            bar.set_message(message);
        }
    }

    /// Removes the bar.
    pub fn finish(self) {
        if let Some(bar) = self.0 {
            bar.finish_and_clear();
        }
    }
}
