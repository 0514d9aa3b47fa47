//! Named exit codes (documented in `fspack(1)` and the README) and the one mapping from error
//! kinds to them, as nextest does: every library error has a kind (`kind()` on each crate's error
//! type), and this module alone decides which code a kind exits with. The matches are exhaustive,
//! so a new kind does not compile until it has a code here.

use std::fmt;

use fspack_engine::error::kinds;

/// A documented exit code. The man page table and the README table come from [`Code::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
    /// Success.
    Success = 0,
    /// Any failure not covered by a more specific code.
    Failure = 1,
    /// Bad usage: the user's mistake, fixed by changing the command line.
    Usage = 2,
    /// A reference, tag, blob, path or mount point does not exist.
    NotFound = 3,
    /// The registry refused our credentials.
    Auth = 4,
    /// The network or the registry failed after retries; trying again later may work.
    Network = 5,
    /// Content failed verification; retrying will not help.
    Integrity = 6,
    /// Mounting failed, or privileges/kernel support are missing.
    Mount = 7,
}

impl Code {
    /// Every code, in numeric order.
    pub const ALL: [Code; 8] = [
        Code::Success,
        Code::Failure,
        Code::Usage,
        Code::NotFound,
        Code::Auth,
        Code::Network,
        Code::Integrity,
        Code::Mount,
    ];

    /// The process exit status.
    pub fn number(self) -> u8 {
        self as u8
    }

    /// One line for the man page and README tables.
    pub fn meaning(self) -> &'static str {
        match self {
            Code::Success => "success",
            Code::Failure => {
                "failure not covered below (local I/O error, a source file that changed during the build, a tree the format cannot store)"
            }
            Code::Usage => {
                "bad usage: unknown flag, invalid reference, option value or mount point, or an artifact fspack cannot mount (a tar+gzip container image, a layer type it does not know)"
            }
            Code::NotFound => {
                "reference, tag, blob, path (a source directory, a key or policy file) or mount point not found"
            }
            Code::Auth => "authentication or authorization refused by the registry",
            Code::Network => "network or registry failure after retries (temporary)",
            Code::Integrity => {
                "content failed verification (digest, chunk or size mismatch, malformed or oversized manifest, corrupt blob, image paired with foreign data blobs, model artifact unsafe to mount); nothing was committed or mounted, and retrying will not help"
            }
            Code::Mount => "mount failed, or root privileges or kernel support are missing",
        }
    }
}

/// Exit status after an interrupt (SIGINT) that fspack caught to clean up: 128 + 2, what the
/// shell reports for a process the signal killed.
pub const INTERRUPTED: i32 = 130;

/// A usage error found by the CLI itself (not by clap, which exits 2 on its own).
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Returns early with a [`UsageError`].
macro_rules! usage {
    ($($arg:tt)*) => {
        return Err($crate::exit::UsageError(format!($($arg)*)).into())
    };
}
pub(crate) use usage;

/// Maps an error chain to an exit code: the first link that is a typed error decides.
pub fn classify(err: &anyhow::Error) -> Code {
    for cause in err.chain() {
        if let Some(code) = classify_one(cause) {
            return code;
        }
    }
    Code::Failure
}

fn classify_one(cause: &(dyn std::error::Error + 'static)) -> Option<Code> {
    if cause.is::<UsageError>() {
        return Some(Code::Usage);
    }
    if let Some(k) = fspack_engine::error::kind_of(cause) {
        return Some(engine(k));
    }
    if let Some(e) = cause.downcast_ref::<std::io::Error>()
        && e.kind() == std::io::ErrorKind::NotFound
    {
        return Some(Code::NotFound);
    }
    None
}

fn engine(k: fspack_engine::ErrorKind) -> Code {
    use fspack_engine::ErrorKind as K;
    match k {
        K::Usage => Code::Usage,
        K::NotFound => Code::NotFound,
        K::Integrity => Code::Integrity,
        K::Io => Code::Failure,
        K::Image(k) => image(k),
        K::Registry(k) => registry(k),
        K::Store(k) => store(k),
        K::Mount(k) => mount(k),
    }
}

fn registry(k: kinds::Registry) -> Code {
    use kinds::Registry as K;
    match k {
        K::Usage => Code::Usage,
        K::Auth => Code::Auth,
        K::NotFound => Code::NotFound,
        // An answer the protocol does not allow is most often a proxy or a registry having a bad
        // moment (an HTML error page, a 500 without a body); trying later is the remedy.
        K::Network | K::Protocol => Code::Network,
        K::Integrity => Code::Integrity,
        K::Io => Code::Failure,
    }
}

fn store(k: kinds::Store) -> Code {
    use kinds::Store as K;
    match k {
        K::Usage => Code::Usage,
        K::NotFound => Code::NotFound,
        K::Integrity => Code::Integrity,
        K::Io => Code::Failure,
    }
}

fn image(k: kinds::Image) -> Code {
    use kinds::Image as K;
    match k {
        K::Usage => Code::Usage,
        K::NotFound => Code::NotFound,
        K::Integrity => Code::Integrity,
        K::Unsupported | K::Changed | K::Io => Code::Failure,
    }
}

fn mount(k: kinds::Mount) -> Code {
    use kinds::Mount as K;
    match k {
        K::Usage => Code::Usage,
        K::Mount => Code::Mount,
    }
}

/// Whether the error is a closed stdout (`fspack ls | head`), which exits quietly.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            // `--json` writes through serde_json, whose error carries the I/O error's kind.
            || c.downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                == Some(std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_level_help_names_every_exit_code() {
        use clap::CommandFactory;
        let help = crate::args::Cli::command().render_help().to_string();
        let line = help
            .lines()
            .find(|l| l.starts_with("Exit codes:"))
            .unwrap_or_else(|| panic!("no exit codes in:\n{help}"));
        let text = help[help.find(line).unwrap()..].replace('\n', " ");
        for code in Code::ALL {
            assert!(
                text.contains(&format!(" {} ", code.number())),
                "exit code {} missing: {text}",
                code.number()
            );
        }
        assert!(
            text.contains(&format!(" {INTERRUPTED} interrupted")),
            "{text}"
        );
    }

    #[test]
    fn a_closed_stdout_under_json_output_is_a_broken_pipe() {
        struct Closed;
        impl std::io::Write for Closed {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let e = serde_json::to_writer(Closed, &[1, 2, 3]).unwrap_err();
        assert!(is_broken_pipe(&anyhow::Error::from(e)));
        let other = serde_json::from_str::<u8>("x").unwrap_err();
        assert!(!is_broken_pipe(&anyhow::Error::from(other)));
    }

    #[test]
    fn codes_are_numbered_in_order_without_gaps() {
        for (i, c) in Code::ALL.iter().enumerate() {
            assert_eq!(c.number() as usize, i, "{c:?}");
        }
    }

    /// The README's table is hand-written Markdown; it must say what the man page says.
    #[test]
    fn readme_table_matches_the_definition() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
        for c in Code::ALL {
            let row = format!("| {} | {} |", c.number(), c.meaning());
            assert!(readme.contains(&row), "README.md lacks the row\n{row}");
        }
    }

    #[test]
    fn chains_are_classified_by_their_first_typed_link() {
        // Lower crates' errors, raw or wrapped, are classified by the engine's kind_of (tested
        // there); here an engine error under an anyhow context.
        let integrity = fspack_engine::EngineError::Integrity("blob sha256:aa is corrupt".into());
        let e = anyhow::Error::new(integrity).context("cannot mount x");
        assert_eq!(classify(&e), Code::Integrity);
        let e = anyhow::Error::new(UsageError("no".into())).context("login");
        assert_eq!(classify(&e), Code::Usage);
        let e = anyhow::anyhow!("plain");
        assert_eq!(classify(&e), Code::Failure);
    }
}
