//! Everything that goes to the terminal besides data: logging, progress and the one error renderer.

use std::io::{IsTerminal, Write};

use crate::args::GlobalArgs;

/// Sends `tracing` events to stderr; `-v` raises the level, `RUST_LOG` overrides it.
pub fn init_logging(global: &GlobalArgs) {
    use tracing_subscriber::EnvFilter;
    let default = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info,fspack=info",
        (false, _) => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(use_color())
        .without_time()
        .with_target(false)
        .try_init();
}

/// Whether stderr gets colour: a terminal and no `NO_COLOR`.
pub fn use_color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// Prints `error: …`, then each distinct cause as `caused by: …`, then any `hint:` lines.
pub fn render_error(err: &anyhow::Error) {
    let mut stderr = std::io::stderr().lock();
    let (red, yellow, reset) = if use_color() {
        ("\x1b[1;31m", "\x1b[1;33m", "\x1b[0m")
    } else {
        ("", "", "")
    };
    let mut hints = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for (i, cause) in err.chain().enumerate() {
        let mut text = cause.to_string();
        // Messages may carry "; hint" tails written by libraries: split them into hint lines.
        if let Some((msg, hint)) = text.split_once("\nhint: ") {
            hints.push(hint.to_string());
            text = msg.to_string();
        }
        if text.is_empty() || seen.iter().any(|s| s.contains(&text)) {
            continue;
        }
        let label = if i == 0 {
            format!("{red}error:{reset}")
        } else {
            "  caused by:".to_string()
        };
        let _ = writeln!(stderr, "{label} {text}");
        seen.push(text);
    }
    for h in hints {
        let _ = writeln!(stderr, "{yellow}hint:{reset} {h}");
    }
}

/// `n` and the noun, singular for one: `1 layer`, `3 layers` (nouns here take an `s`).
pub fn count(n: usize, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        _ => format!("{n} {noun}s"),
    }
}

/// A size in bytes the way the progress bars show it (binary units: `320.02 MiB`), so a
/// summary line and the bar before it agree.
pub fn size(bytes: u64) -> String {
    indicatif::HumanBytes(bytes).to_string()
}
