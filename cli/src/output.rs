//! Everything that goes to the terminal besides data: logging, progress and the one error renderer.

use std::io::{IsTerminal, Write};

use crate::args::GlobalArgs;

/// Sends `tracing` events to stderr; `-v` raises the level, `RUST_LOG` overrides it.
///
/// Without `-v` (and without `RUST_LOG`) the only events shown are warnings and errors meant for
/// the user: they read `warning: …` like the `error: …` of [`render_error`], not like a log line
/// (report items 13 and 21). `-vv` leaves out the HTTP stack's own debug events (connection
/// pool, TLS roots; report item 25): `-vvv` or `RUST_LOG` brings them back.
pub fn init_logging(global: &GlobalArgs) {
    use tracing_subscriber::EnvFilter;
    let default = log_filter(global.quiet, global.verbose);
    let from_env = EnvFilter::try_from_default_env().ok();
    let plain = from_env.is_none() && global.verbose == 0;
    let filter = from_env.unwrap_or_else(|| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(use_color())
        .without_time()
        .with_target(false);
    let _ = if plain {
        builder.event_format(UserMessages).try_init()
    } else {
        builder.try_init()
    };
}

/// The default log filter for `-q` and the number of `-v`.
fn log_filter(quiet: bool, verbose: u8) -> &'static str {
    match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info,fspack=info",
        (false, 2) => "debug,hyper=info,hyper_util=info,reqwest=info,rustls=info,h2=info",
        (false, _) => "debug",
    }
}

/// Formats an event as `warning: MESSAGE key=value…` (or `error: …`), for users who did not ask
/// for logs.
struct UserMessages;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for UserMessages
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let (label, colour) = match *event.metadata().level() {
            tracing::Level::ERROR => ("error", "\x1b[1;31m"),
            tracing::Level::WARN => ("warning", "\x1b[1;33m"),
            _ => ("note", "\x1b[1m"),
        };
        if writer.has_ansi_escapes() {
            write!(writer, "{colour}{label}:\x1b[0m ")?;
        } else {
            write!(writer, "{label}: ")?;
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Whether stderr gets colour: a terminal and no `NO_COLOR`.
pub fn use_color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// Prints `error: …`, then each distinct cause as `caused by: …`, then any `hint:` lines.
/// Below a cause that explains itself ([`fspack_engine::error::explains_itself`]) the rest of
/// the chain is printed only with `-v` (`verbose` > 0).
pub fn render_error(err: &anyhow::Error, verbose: u8) {
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
        if verbose == 0 && fspack_engine::error::explains_itself(cause) {
            break;
        }
    }
    for h in hints {
        let _ = writeln!(stderr, "{yellow}hint:{reset} {h}");
    }
}

/// The trust rules an artifact passed before it was fetched or mounted (issue 12), one
/// `trust: passed RULE` line each on stderr, so a signed pull says so without `--json` or `-v`.
pub fn print_trust_checks(checks: &[String]) {
    for rule in checks {
        eprintln!("trust: passed {rule}");
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

/// A digest shortened for a table: `sha256:` and the first 12 hex digits, as `docker images`
/// shortens IDs.
pub fn short_digest(digest: &str) -> &str {
    &digest[..digest.len().min("sha256:".len() + 12)]
}

/// Lays out a table: each column as wide as its widest cell (so a long reference never pushes
/// the rest askew), two spaces between columns, the columns in `right` right-aligned (sizes),
/// the last column unpadded. One line per row, header first, each ending in a newline.
pub fn table<const N: usize>(header: [&str; N], rows: &[[String; N]], right: &[usize]) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header = header.map(String::from);
    for r in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                let (before, after) = if right.contains(&i) {
                    (pad, 0)
                } else {
                    (0, pad)
                };
                line.push_str(&" ".repeat(before));
                line.push_str(cell);
                line.push_str(&" ".repeat(after + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_sizes_columns_to_their_widest_cell() {
        let rows = [
            [
                "a-very-long-reference:v1".to_string(),
                "1 B".into(),
                "x".into(),
            ],
            ["b".to_string(), "12.00 KiB".into(), "y".into()],
        ];
        let t = table(["REF", "SIZE", "AT"], &rows, &[1]);
        assert_eq!(
            t,
            "REF                            SIZE  AT\n\
             a-very-long-reference:v1        1 B  x\n\
             b                         12.00 KiB  y\n"
        );
    }
}
