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
    /// Set once the whole operation's size is known; transfers then no longer grow the total.
    planned: std::sync::atomic::AtomicBool,
    /// Each bar, and whether its bytes count toward the total (transfers do, phases do not).
    bars: Mutex<Vec<Option<(ProgressBar, bool)>>>,
    /// Whether the total has become a bar (see [`Bars::size_known`]).
    sized: std::sync::atomic::AtomicBool,
    /// Bytes found present already (cached blobs, blobs the registry has): taken off the total,
    /// and named beside it so a total that shrinks says why.
    skipped: std::sync::atomic::AtomicU64,
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
        // Until a size is known a bar would read `[=====] 0 B/0 B` (report item 25): a spinner.
        total.set_style(
            ProgressStyle::with_template("{prefix:>12.bold} {spinner} {bytes}")
                .expect("valid template"),
        );
        total.enable_steady_tick(std::time::Duration::from_millis(120));
        total.set_prefix("total");
        Bars {
            multi,
            total,
            bars: Mutex::new(Vec::new()),
            planned: std::sync::atomic::AtomicBool::new(false),
            sized: std::sync::atomic::AtomicBool::new(false),
            skipped: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Turns the total's spinner into a bar once it has a length.
    fn size_known(&self) {
        let len = self.total.length().unwrap_or(0);
        if len == 0 || self.sized.swap(true, std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        self.total.disable_steady_tick();
        self.total.set_style(
            ProgressStyle::with_template(
                "{prefix:>12.bold} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
    }

    /// Whether the total shows a bar (a size is known) rather than a spinner.
    #[cfg(test)]
    fn shows_bar(&self) -> bool {
        self.sized.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Bars {
    fn add(&self, name: &str, total: u64, counts: bool) -> usize {
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
        if counts && !self.planned.load(std::sync::atomic::Ordering::Relaxed) {
            self.total.inc_length(total);
            self.size_known();
        }
        let mut bars = self.bars.lock().expect("not poisoned");
        bars.push(Some((bar, counts)));
        bars.len() - 1
    }
}

impl Reporter for Bars {
    fn start(&self, name: &str, total: u64) -> usize {
        self.add(name, total, true)
    }
    fn start_phase(&self, name: &str, total: u64) -> usize {
        self.add(name, total, false)
    }
    fn plan_total(&self, bytes: u64) {
        self.planned
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.total.set_length(bytes);
        self.size_known();
    }
    fn skipped(&self, bytes: u64) {
        let len = self.total.length().unwrap_or(0);
        self.total.set_length(len.saturating_sub(bytes));
        let skipped = self
            .skipped
            .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed)
            + bytes;
        self.total.set_message(format!(
            "({} present already)",
            indicatif::HumanBytes(skipped)
        ));
    }
    fn advance(&self, id: usize, n: u64) {
        if let Some(Some((bar, counts))) = self.bars.lock().expect("not poisoned").get(id) {
            bar.inc(n);
            if *counts {
                self.total.inc(n);
            }
        }
    }
    fn reset(&self, id: usize, pos: u64) {
        if let Some(Some((bar, counts))) = self.bars.lock().expect("not poisoned").get(id) {
            let back = bar.position().saturating_sub(pos);
            bar.set_position(pos);
            if *counts {
                self.total
                    .set_position(self.total.position().saturating_sub(back));
            }
        }
    }
    fn finish(&self, id: usize) {
        if let Some(slot) = self.bars.lock().expect("not poisoned").get_mut(id)
            && let Some((bar, _)) = slot.take()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_is_a_spinner_until_a_size_is_known() {
        let bars = Bars::new(false);
        assert!(!bars.shows_bar());
        // A phase (hashing) does not size the transfer, nor does an empty blob.
        bars.start_phase("hashing", 100);
        bars.start("empty", 0);
        assert!(!bars.shows_bar());
        bars.start("layer", 10);
        assert!(bars.shows_bar());
        let planned = Bars::new(false);
        planned.plan_total(0);
        assert!(!planned.shows_bar());
        planned.plan_total(5);
        assert!(planned.shows_bar());
    }

    #[test]
    fn bytes_present_already_leave_the_total_and_are_named_beside_it() {
        let bars = Bars::new(false);
        bars.plan_total(3 << 20);
        bars.skipped(1 << 20);
        bars.skipped(1 << 20);
        assert_eq!(bars.total.length(), Some(1 << 20));
        assert_eq!(bars.total.message(), "(2.00 MiB present already)");
    }
}
