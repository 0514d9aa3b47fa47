//! One module per subcommand; each turns its clap arguments into engine settings and runs them.

mod build;
mod complete;
mod docs;
mod images;
mod inspect;
mod login;
mod mount;
mod pull;
mod push;
mod sign;
mod verify;

use std::sync::Arc;

use anyhow::Context;
use fspack_engine::{Client, ClientOptions, Store};

use crate::args::{Cli, Command, GlobalArgs, RegistryArgs, TrustArgs};
use crate::progress::Bars;

/// SIGINT (Ctrl-C) and SIGTERM (what `kill`, `timeout`, systemd and container runtimes send),
/// both answered alike: a fleet stops a pull with SIGTERM, and it must not leave a mount point
/// behind either (found in the s9 fresh-eyes pass: exit 143 and the created directory left).
pub struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    /// Waits for the first SIGINT or SIGTERM.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}

/// Starts listening for SIGINT and SIGTERM: from here on they no longer kill the process, they
/// are answered where they were asked for: [`mount::or_interrupted`] for a mount, or the task
/// [`remove_temporaries_on_interrupt`] starts.
pub fn listen() -> anyhow::Result<Signals> {
    use tokio::signal::unix::{SignalKind, signal};
    Ok(Signals {
        int: signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C")?,
        term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
    })
}

/// `build` and `push` write into temporary files and directories (a staged image, its blob
/// directory, compressed SquashFS shards) that a signal's default action would leave behind:
/// 0.4 GB after one Ctrl-C in the s8 fidelity pass. On `SIGINT` or `SIGTERM` this removes
/// them (`fspack_atomic::remove_pending`) and exits 130. The old output is untouched: only a
/// finished write is renamed over it, and an interrupt waits for that rename. A registry push
/// cut short moves no tag, since the manifest goes last.
///
/// `kept`: what the interrupt leaves on purpose, said after that line (a push to an `oci:`
/// layout keeps its partial blobs for the next push: s10 fresh-eyes pass, the line said
/// "removed 0 temporary files" over 145 MiB left in the layout).
/// `unchanged`: what stays as it was, in the destination's terms (s12 fresh-eyes pass: a push
/// to a registry said "the old output is unchanged", and a registry push has no output file).
fn remove_temporaries_on_interrupt(g: &GlobalArgs, unchanged: &'static str, kept: Option<String>) {
    // Without both handlers the default action stays: dying is better than ignoring Ctrl-C.
    let Ok(mut signals) = listen() else {
        return;
    };
    let quiet = g.quiet;
    tokio::spawn(async move {
        signals.recv().await;
        let removed = fspack_atomic::remove_pending();
        if !quiet {
            eprintln!(
                "interrupted: removed {} temporary {}; {unchanged}",
                removed,
                if removed == 1 { "file" } else { "files" }
            );
            if let Some(k) = &kept {
                eprintln!("{k}");
            }
        }
        std::process::exit(crate::exit::INTERRUPTED);
    });
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut global = cli.global.clone();
    if let Some(store) = cli.command.store() {
        global.store = Some(store.clone());
    }
    let g = &global;
    match cli.command {
        Command::Build(args) => {
            remove_temporaries_on_interrupt(g, "the old output is unchanged", None);
            build::run(args, g).await
        }
        Command::Push(args) => {
            let kept = match fspack_engine::target::Target::parse(&args.reference) {
                Ok(fspack_engine::target::Target::Layout { path, .. }) => Some(format!(
                    "partial blobs stay in {} for the next push to {} to resume; remove that directory to give up",
                    path.join("ingest").display(),
                    path.display()
                )),
                _ => None,
            };
            remove_temporaries_on_interrupt(g, "no tag was moved", kept);
            push::run(args, g).await
        }
        Command::Pull(args) => pull::run(args, g).await,
        Command::Mount(args) => mount::mount(args, g).await,
        Command::Umount(args) => mount::umount(args, g),
        Command::Ls(args) => mount::ls(args, g),
        Command::Sign(args) => sign::run(args, g).await,
        Command::Images(args) => images::images(args, g),
        Command::Rmi(args) => images::rmi(args, g),
        Command::Gc(args) => mount::gc(args, g),
        Command::Verify(args) => verify::run(args, g).await,
        Command::Inspect(args) => inspect::run(args, g).await,
        Command::Login(args) => login::login(args).await,
        Command::Logout(args) => login::logout(args),
        Command::Completions(args) => docs::completions(args),
        Command::GenerateDocs(args) => docs::generate(args),
        Command::Complete(args) => complete::run(args, g).await,
        Command::LazyServe => mount::lazy_serve().await,
    }
}

/// Registry client options from the command line.
pub fn client(args: &RegistryArgs) -> anyhow::Result<Client> {
    client_with(client_options(args))
}

/// A registry client with these options.
pub fn client_with(opts: ClientOptions) -> anyhow::Result<Client> {
    Ok(fspack_engine::open::client(opts)?)
}

/// The client options of [`client`], for a lazy mount's server to build the same client.
pub fn client_options(args: &RegistryArgs) -> ClientOptions {
    ClientOptions {
        plain_http: args.plain_http,
        insecure_tls: args.insecure,
        username: args.username.clone(),
        password: args.password.clone(),
        plain_http_credentials: args.plain_http_credentials,
        user_agent: format!("fspack/{}", env!("CARGO_PKG_VERSION")),
        ..Default::default()
    }
}

/// The checks asked for: `--policy` (else /etc/fspack/policy.json when it exists) and
/// `--verify-key`. A policy or key that cannot be read is an error, never "accept".
pub fn trust(args: &TrustArgs) -> anyhow::Result<Arc<fspack_engine::trust::Trust>> {
    use fspack_engine::trust::{DEFAULT_POLICY_PATH, Policy, Trust, verify::load_keys};
    let policy_path = args.policy.clone().or_else(|| {
        let p = std::path::PathBuf::from(DEFAULT_POLICY_PATH);
        p.exists().then_some(p)
    });
    let policy = policy_path
        .map(|p| Policy::from_file(&p).map_err(fspack_engine::EngineError::from))
        .transpose()
        .context("cannot use the trust policy")?;
    let verify_keys = load_keys(&args.verify_key)
        .map_err(fspack_engine::EngineError::from)
        .context("cannot use --verify-key")?;
    Ok(Arc::new(Trust {
        policy,
        verify_keys,
    }))
}

/// Opens the local store chosen by `--store`, `FSPACK_STORE` or the default location.
pub fn store(g: &GlobalArgs) -> anyhow::Result<Arc<Store>> {
    Ok(fspack_engine::open::open_store(g.store.as_deref())?)
}

/// The store, only if one exists already: commands that only read (ls, gc, umount, completion)
/// must not create /var/lib/fspack as a side effect.
pub fn existing_store(g: &GlobalArgs) -> anyhow::Result<Option<Arc<Store>>> {
    Ok(fspack_engine::open::existing_store(g.store.as_deref())?)
}

/// How a hint spells fspack for the store of this command line ([`fspack_engine::command_for`]).
pub fn fspack_command(g: &GlobalArgs) -> String {
    match &g.store {
        Some(p) => fspack_engine::command_for(p),
        None => "fspack".to_string(),
    }
}

/// Progress bars unless quiet or printing JSON.
pub fn bars(g: &GlobalArgs, json: bool) -> Arc<Bars> {
    Arc::new(Bars::new(!g.quiet && !json))
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}
