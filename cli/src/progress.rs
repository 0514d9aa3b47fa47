//! indicatif progress bars behind the engine's `Reporter` trait: one bar per blob in flight and a
//! total with rate and ETA; hidden under `-q`, `--json`, or when stderr is not a terminal.

use std::io::IsTerminal;
use std::sync::Mutex;

use fspack_engine::report::Reporter;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Draws transfers on stderr.
pub struct Bars {
    multi: MultiProgress,
    total: ProgressBar,
    bars: Mutex<Vec<Option<ProgressBar>>>,
}

impl Bars {
    /// Bars drawn only when `visible` and stderr is a terminal.
    pub fn new(visible: bool) -> Bars {
        let target = if visible && std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let total = multi.add(ProgressBar::new(0));
        total.set_style(
            ProgressStyle::with_template(
                "{prefix:>12.bold} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        total.set_prefix("total");
        Bars {
            multi,
            total,
            bars: Mutex::new(Vec::new()),
        }
    }
}

impl Reporter for Bars {
    fn start(&self, name: &str, total: u64) -> usize {
        let bar = self
            .multi
            .insert_before(&self.total, ProgressBar::new(total));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        let short: String = name.chars().take(12).collect();
        bar.set_prefix(short);
        self.total.inc_length(total);
        let mut bars = self.bars.lock().expect("not poisoned");
        bars.push(Some(bar));
        bars.len() - 1
    }
    fn advance(&self, id: usize, n: u64) {
        if let Some(Some(bar)) = self.bars.lock().expect("not poisoned").get(id) {
            bar.inc(n);
        }
        self.total.inc(n);
    }
    fn reset(&self, id: usize, pos: u64) {
        if let Some(Some(bar)) = self.bars.lock().expect("not poisoned").get(id) {
            let back = bar.position().saturating_sub(pos);
            bar.set_position(pos);
            self.total
                .set_position(self.total.position().saturating_sub(back));
        }
    }
    fn finish(&self, id: usize) {
        if let Some(slot) = self.bars.lock().expect("not poisoned").get_mut(id)
            && let Some(bar) = slot.take()
        {
            bar.finish_and_clear();
        }
    }
    fn message(&self, msg: &str) {
        let _ = self.multi.println(msg);
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        self.total.finish_and_clear();
    }
}
