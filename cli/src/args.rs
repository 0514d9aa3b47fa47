//! The command-line surface, in one place: clap types only. Commands turn these into plain
//! settings before any work starts, so the rest of the code never sees clap.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Build read-only EROFS/SquashFS images, push them to OCI registries in parallel, pull and mount
/// them without unpacking.
#[derive(Debug, Parser)]
#[command(
    name = "fspack",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(
    after_help = "Run 'fspack <command> --help' for the options of one command.\n\nExit codes: 0 success, 1 failure, 2 bad usage, 3 not found, 4 authentication refused, 5 network or registry failure (temporary), 6 content failed verification, 7 mount failed or privileges missing, 130 interrupted; `man fspack` explains each."
)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
    /// Options every command accepts.
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// Options every command accepts.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    // The global options come last in every command's help (display_order), not wherever
    // clap's counter puts them among the command's own.
    /// Print less: no progress bars, only errors and requested data.
    #[arg(short, long, global = true, display_order = 900)]
    pub quiet: bool,
    /// Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack's (or
    /// set RUST_LOG).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, display_order = 901)]
    pub verbose: u8,
    /// Local store (an OCI image layout) for pulled images [default: $FSPACK_STORE, else
    /// /var/lib/fspack as root, $XDG_DATA_HOME/fspack otherwise].
    // Not global: commands that never touch the store (login, logout, completions, inspect,
    // sign, build) must not offer it (report item 19); those that do flatten [`StoreArgs`].
    // FSPACK_STORE is read by the store's default_root, not by clap: a clap `env` counts as
    // given, and usage lines then showed `--store <DIR>` as if it were required (s10).
    #[arg(long, value_name = "DIR", display_order = 902)]
    pub store: Option<PathBuf>,
}

/// `--store` on the commands that use the local store (also accepted before the command).
#[derive(Debug, Args, Clone)]
pub struct StoreArgs {
    /// Local store (an OCI image layout) for pulled images [default: $FSPACK_STORE, else
    /// /var/lib/fspack as root, $XDG_DATA_HOME/fspack otherwise].
    // FSPACK_STORE is read by the store's default_root, not by clap: a clap `env` counts as
    // given, and usage lines then showed `--store <DIR>` as if it were required (s10).
    #[arg(long, value_name = "DIR", display_order = 902)]
    pub store: Option<PathBuf>,
}

/// `-j/--jobs` on the commands that transfer blobs.
#[derive(Debug, Args, Clone)]
pub struct JobsArgs {
    /// Parallel transfers: blobs at once, and HTTP Range requests within one large blob.
    #[arg(
        short,
        long,
        value_name = "N",
        default_value_t = 4,
        value_parser = parse_jobs
    )]
    pub jobs: usize,
}

/// fspack's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build an EROFS or SquashFS image from a directory.
    #[command(
        after_help = "Examples:\n  fspack build ./model -o model.erofs\n  fspack build ./model -o model.erofs --layout chunked\n  fspack build ./src -o src.sqfs --format squashfs --compression zstd"
    )]
    Build(BuildArgs),
    /// Push a directory or an image file to a registry (or an OCI layout) as an artifact.
    #[command(
        after_help = "Examples:\n  fspack push ./model localhost:5000/models/llama:v1\n  fspack push model.erofs registry.example.com/team/model:v2 --jobs 8\n  fspack push ./model oci:/srv/layout:v1"
    )]
    Push(PushArgs),
    /// Download an artifact into the local store, verifying every blob, and optionally mount it.
    #[command(
        after_help = "Examples:\n  fspack pull localhost:5000/models/llama:v1\n  fspack pull localhost:5000/models/llama:v1 --mount /mnt/llama"
    )]
    Pull(PullArgs),
    /// Mount an artifact from the local store (pulling it first if needed).
    #[command(
        after_help = "Examples:\n  fspack mount localhost:5000/models/llama:v1 /mnt/llama\n  fspack mount localhost:5000/models/llama:v1 /mnt/llama --lazy\n  fspack mount oci:/srv/layout:v1 /mnt/v1"
    )]
    Mount(MountArgs),
    /// Unmount a directory mounted by fspack and release its loop devices.
    #[command(
        alias = "unmount",
        after_help = "Examples:\n  fspack umount /mnt/llama"
    )]
    Umount(UmountArgs),
    /// List what fspack has mounted: reference, manifest digest, format, devices.
    #[command(after_help = "Examples:\n  fspack ls\n  fspack ls --wait\n  fspack ls --json")]
    Ls(LsArgs),
    /// Show an artifact's manifest, layers, sizes and format without downloading its data.
    #[command(
        after_help = "Examples:\n  fspack inspect localhost:5000/models/llama:v1\n  fspack inspect oci:/srv/layout:v1 --json"
    )]
    Inspect(InspectArgs),
    /// Sign an artifact's manifest digest with an ECDSA P-256 key, the way `cosign sign --key`
    /// does (signature under the `sha256-<hex>.sig` tag).
    #[command(
        after_help = "Examples:\n  fspack sign localhost:5000/models/llama:v1 --key signing.pem\n  cosign verify --key signing.pub localhost:5000/models/llama:v1"
    )]
    Sign(SignArgs),
    /// List the images in the local store: reference, digest, format, size, where mounted.
    Images(ImagesArgs),
    /// Remove images (tags) from the local store; `gc` then frees the blobs nothing else uses.
    #[command(
        after_help = "Examples:\n  fspack rmi localhost:5000/models/llama:v1\n  fspack rmi localhost:5000/models/llama:v1 oci:/srv/layout:v1 && fspack gc"
    )]
    Rmi(RmiArgs),
    /// Remove blobs from the local store that no tag and no mount uses.
    #[command(
        after_help = "Examples:\n  fspack gc\n  fspack rmi localhost:5000/models/llama:v1 && fspack gc"
    )]
    Gc(GcArgs),
    /// Re-hash stored blobs and name every bad blob, bad chunk and the mounts that use them.
    #[command(
        after_help = "Exits 6 when a blob is corrupt or missing (after --repair: when one could not be repaired). Exits 5 instead when every blob left bad is bad only because its repair could not reach the registry, or the registry failed: the same command may work later; 4 when the registry refused the credentials (log in, then run it again).\n\nExamples:\n  fspack verify --all\n  fspack verify localhost:5000/models/llama:v1 --repair"
    )]
    Verify(VerifyArgs),
    /// Check registry credentials with the registry, then store them in the Docker config file.
    Login(LoginArgs),
    /// Remove stored registry credentials.
    Logout(LogoutArgs),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
    /// Write completion scripts and man pages (used to refresh completions/ and man/).
    #[command(hide = true)]
    GenerateDocs(GenerateDocsArgs),
    /// Print dynamic completion candidates (called by the completion scripts).
    #[command(name = "__complete", hide = true)]
    Complete(CompleteArgs),
    /// Serve a lazy mount's blobs (started by `--lazy`; reads its settings from stdin).
    #[command(name = "lazy-serve", hide = true)]
    LazyServe,
}

impl Command {
    /// The `--store` given after the command, if this command takes one.
    pub fn store(&self) -> Option<&PathBuf> {
        let s = match self {
            Command::Push(a) => &a.store,
            Command::Pull(a) => &a.store,
            Command::Mount(a) => &a.store,
            Command::Verify(a) => &a.store,
            Command::Umount(a) => &a.store,
            Command::Ls(a) => &a.store,
            Command::Gc(a) => &a.store,
            Command::Images(a) => &a.store,
            Command::Rmi(a) => &a.store,
            Command::Complete(a) => &a.store,
            _ => return None,
        };
        s.store.as_ref()
    }
}

/// Parses the command line like [`Parser::parse`], but never suggests a hidden subcommand
/// (`fspack lazy` must not answer "a similar subcommand exists: 'lazy-serve'"; report item 18).
pub fn parse() -> Cli {
    use clap::CommandFactory;
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let e = match Cli::try_parse() {
        Ok(cli) => return cli,
        Err(e) => e,
    };
    let cmd = Cli::command();
    let hidden: Vec<&str> = cmd
        .get_subcommands()
        .filter(|s| s.is_hide_set())
        .map(|s| s.get_name())
        .collect();
    let suggests_hidden = e.kind() == ErrorKind::InvalidSubcommand
        && matches!(
            e.get(ContextKind::SuggestedSubcommand),
            Some(ContextValue::Strings(s)) if s.iter().any(|s| hidden.contains(&s.as_str()))
        );
    if !suggests_hidden {
        e.exit()
    }
    let text = e.render().to_string();
    let mut skip_blank = false;
    for line in text.lines() {
        if line.contains("similar subcommand") {
            skip_blank = true;
        } else if !(skip_blank && line.is_empty()) {
            skip_blank = false;
            eprintln!("{line}");
        } else {
            skip_blank = false;
        }
    }
    std::process::exit(e.exit_code())
}

/// What the completion scripts ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompleteKind {
    /// Mount points of fspack mounts.
    Mounts,
    /// References: tags in the local store, and a repository's tags from its registry.
    Refs,
}

/// `fspack __complete KIND [PREFIX]`.
#[derive(Debug, Args)]
pub struct CompleteArgs {
    /// What to complete.
    #[arg(value_enum)]
    pub kind: CompleteKind,
    /// The word typed so far.
    #[arg(default_value = "", allow_hyphen_values = true)]
    pub prefix: String,
    /// The local store.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Image format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// EROFS: uncompressed, mounts file-backed or from loop devices; multi-device chunked layout.
    Erofs,
    /// SquashFS: compressed, widely deployed; shards are stacked with overlayfs.
    Squashfs,
}

/// EROFS layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LayoutArg {
    /// One self-contained image.
    Single,
    /// A metadata image plus data blobs (EROFS multi-device); what push uses for large trees.
    Chunked,
}

/// SquashFS compressor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressionArg {
    /// zstd (default).
    Zstd,
    /// gzip (zlib).
    Gzip,
    /// xz.
    Xz,
    /// lz4.
    Lz4,
    /// lzo.
    Lzo,
}

/// Options that shape an image built from a directory.
#[derive(Debug, Args, Clone)]
pub struct ImageArgs {
    /// Image format [default: erofs].
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Chunk size of large files in the chunked EROFS layout (power of two, at least 4K)
    /// [default: 1M].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub erofs_chunk_size: Option<u64>,
    /// Largest data blob of the chunked EROFS layout, and the pack size of SquashFS shards
    /// (files of a quarter of it get blobs or shards of their own); more blobs, more parallelism.
    /// At least one EROFS chunk (--erofs-chunk-size). It bounds the data: each pushed blob also
    /// carries its chunk index (32 bytes + 48 per MiB), a few KiB more.
    /// [default: about 1/16 of the data, a power of two from 16M to 256M]
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub blob_size: Option<u64>,
    /// SquashFS compressor [default: zstd].
    #[arg(long, value_enum)]
    pub compression: Option<CompressionArg>,
    /// SquashFS compression level (compressor default when omitted).
    #[arg(long, value_name = "N")]
    pub level: Option<i32>,
    /// SquashFS block size (power of two from 4K to 1M) [default: 128K].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub block_size: Option<u64>,
    /// SquashFS: split the tree into N disjoint images stacked with overlayfs; "auto" gives
    /// large files shards of their own [default: 1 for build, auto for push].
    #[arg(long, value_name = "auto|N", value_parser = parse_shards)]
    pub shards: Option<Shards>,
    /// Record every file as owned by root (uid 0, gid 0).
    #[arg(long)]
    pub all_root: bool,
    /// Stay on the source directory's filesystem: a directory another filesystem is mounted
    /// on is stored empty, and a file mounted over (a bind mount) is left out, as with
    /// `mksquashfs -one-file-system`.
    #[arg(long)]
    pub one_file_system: bool,
    /// SquashFS: fail on POSIX ACLs (system.posix_acl_*), which the format cannot store,
    /// instead of dropping them with a warning (EROFS keeps them).
    #[arg(long)]
    pub strict_acls: bool,
    /// Record this modification time (seconds since the epoch) on every file.
    #[arg(
        long,
        value_name = "EPOCH",
        env = "SOURCE_DATE_EPOCH",
        hide_env_values = true
    )]
    pub mtime: Option<i64>,
}

impl ImageArgs {
    /// The image format asked for, EROFS unless --format says otherwise.
    pub fn format(&self) -> FormatArg {
        self.format.unwrap_or(FormatArg::Erofs)
    }

    /// The first image option given on the command line, as its flag: what `push IMAGE_FILE`
    /// must refuse, since an image that is already built takes none of them. `--mtime` from
    /// `SOURCE_DATE_EPOCH` alone does not count (the environment is not a request to this push).
    pub fn first_given(&self) -> Option<&'static str> {
        let from_env = std::env::var_os("SOURCE_DATE_EPOCH").is_some();
        [
            ("--format", self.format.is_some()),
            ("--erofs-chunk-size", self.erofs_chunk_size.is_some()),
            ("--blob-size", self.blob_size.is_some()),
            ("--compression", self.compression.is_some()),
            ("--level", self.level.is_some()),
            ("--block-size", self.block_size.is_some()),
            ("--shards", self.shards.is_some()),
            ("--all-root", self.all_root),
            ("--one-file-system", self.one_file_system),
            ("--strict-acls", self.strict_acls),
            ("--mtime", self.mtime.is_some() && !from_env),
        ]
        .into_iter()
        .find_map(|(flag, given)| given.then_some(flag))
    }
}

/// `fspack build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Directory to turn into an image.
    #[arg(value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub dir: PathBuf,
    /// Output image file (chunked EROFS also writes data blobs to OUT.d/; SquashFS shards go to OUT.d/).
    #[arg(short, long, value_name = "OUT", value_hint = clap::ValueHint::FilePath)]
    pub output: PathBuf,
    /// EROFS layout [default: single].
    #[arg(long, value_enum)]
    pub layout: Option<LayoutArg>,
    /// Image options.
    #[command(flatten)]
    pub image: ImageArgs,
    /// Print the result as JSON on stdout (messages stay on stderr).
    #[arg(long)]
    pub json: bool,
}

/// Options for talking to a registry.
#[derive(Debug, Args, Clone)]
pub struct RegistryArgs {
    /// Allow plain HTTP to the registry (loopback registries use it automatically).
    #[arg(long)]
    pub plain_http: bool,
    /// Skip TLS certificate verification (dangerous).
    #[arg(long)]
    pub insecure: bool,
    /// Allow credentials to go over plain HTTP to a host that is not loopback (anyone on the
    /// network path can read them; a warning is printed).
    #[arg(long)]
    pub plain_http_credentials: bool,
    /// Registry user name (else credentials come from the Docker config).
    #[arg(
        long,
        env = "FSPACK_USERNAME",
        value_name = "USER",
        hide_env_values = true
    )]
    pub username: Option<String>,
    /// Registry password or token (prefer FSPACK_PASSWORD or `fspack login`).
    #[arg(
        long,
        env = "FSPACK_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,
}

/// `fspack push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Directory to build and push, or an image file made by fspack or another tool (pushed as
    /// built: the image options are refused).
    #[arg(value_name = "SOURCE", value_hint = clap::ValueHint::AnyPath)]
    pub source: PathBuf,
    /// Destination: host[:port]/repo[:tag] or oci:PATH[:tag] for an OCI image layout (outside
    /// SOURCE); the tag defaults to latest.
    #[arg(value_name = "REF")]
    pub reference: String,
    /// Image options (when SOURCE is a directory).
    #[command(flatten)]
    pub image: ImageArgs,
    /// Upload each blob in PATCH chunks of this size instead of one streamed PUT (for proxies
    /// that cap request bodies).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub chunk_size: Option<u64>,
    /// Sign the pushed manifest with this ECDSA P-256 private key (PKCS#8 PEM), as
    /// `fspack sign` does.
    #[arg(long, value_name = "KEY", value_hint = clap::ValueHint::FilePath)]
    pub sign_key: Option<PathBuf>,
    /// Manifest annotation (repeatable).
    #[arg(long = "annotation", value_name = "KEY=VALUE", value_parser = parse_annotation)]
    pub annotations: Vec<(String, String)>,
    /// Push the directory as a CNCF ModelPack artifact: one raw layer per file, media type by the
    /// file's role, readable by modctl and mounted by fspack with no second copy. Builds no
    /// image, so the format options do not apply.
    #[arg(
        long,
        conflicts_with_all = [
            "format", "erofs_chunk_size", "blob_size", "compression", "level", "block_size",
            "shards", "strict_acls",
        ]
    )]
    pub modelpack: bool,
    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Print the result as JSON on stdout (messages stay on stderr).
    #[arg(long)]
    pub json: bool,
    /// Transfer concurrency.
    #[command(flatten)]
    pub jobs: JobsArgs,
    /// The local store.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// How EROFS images are attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MountModeArg {
    /// File-backed where the kernel supports it (Linux 6.12+), loop devices otherwise.
    Auto,
    /// Mount the image files directly (EROFS only, Linux 6.12+).
    File,
    /// Attach read-only loop devices.
    Loop,
}

/// Options for mounting.
#[derive(Debug, Args, Clone)]
pub struct MountOptsArgs {
    /// Forbid executing files from the mount.
    #[arg(long)]
    pub noexec: bool,
    /// How EROFS images are attached (SquashFS always uses loop devices, and refuses `file`).
    #[arg(long, value_enum, default_value = "auto")]
    pub mount_mode: MountModeArg,
}

/// What must hold before anything is fetched or mounted.
#[derive(Debug, Args, Clone)]
pub struct TrustArgs {
    /// Require a cosign signature of the manifest digest by this public key (PEM; repeatable:
    /// every key must have signed), in addition to the policy.
    #[arg(long, value_name = "PUB", value_hint = clap::ValueHint::FilePath)]
    pub verify_key: Vec<PathBuf>,
    /// Policy file (containers-policy.json shape) [default: /etc/fspack/policy.json when it
    /// exists].
    #[arg(
        long,
        value_name = "FILE",
        env = "FSPACK_POLICY",
        hide_env_values = true,
        value_hint = clap::ValueHint::FilePath
    )]
    pub policy: Option<PathBuf>,
}

/// `fspack sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// Artifact to sign: host[:port]/repo[:tag][@digest] (a tag is resolved to its digest first;
    /// a digest must name a manifest the repository holds, else exit 3 and nothing is uploaded).
    #[arg(value_name = "REF")]
    pub reference: String,
    /// ECDSA P-256 private key, PKCS#8 PEM (`openssl genpkey -algorithm EC -pkeyopt
    /// ec_paramgen_curve:P-256`).
    #[arg(long, value_name = "KEY", value_hint = clap::ValueHint::FilePath)]
    pub key: PathBuf,
    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Print the result as JSON on stdout (messages stay on stderr).
    #[arg(long)]
    pub json: bool,
}

/// `fspack pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// Artifact to pull: host[:port]/repo[:tag][@digest], or oci:PATH[:tag] for an OCI image
    /// layout (copied into the store, verified); the tag defaults to latest.
    #[arg(value_name = "REF")]
    pub reference: String,
    /// Mount the image on this directory once pulled (checked first; created when missing, and
    /// removed again by `fspack umount`).
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub mount: Option<PathBuf>,
    /// Mount as soon as the metadata is verified and fetch data chunks on first read, each
    /// verified against the layer's chunk index (model layers without one: once verified
    /// whole); the rest is fetched in the background, and the mount ends as a plain mount of
    /// the store (needs --mount).
    #[arg(long, requires = "mount")]
    pub lazy: bool,
    /// Mount options.
    #[command(flatten)]
    pub mount_opts: MountOptsArgs,
    /// Signature and policy checks.
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Also re-hash the blobs the store already had for this reference, and fetch again only
    /// the chunks that fail (as `fspack verify REF --repair`).
    #[arg(long)]
    pub verify: bool,
    /// Print the result as JSON on stdout (messages stay on stderr).
    #[arg(long)]
    pub json: bool,
    /// Transfer concurrency.
    #[command(flatten)]
    pub jobs: JobsArgs,
    /// The local store.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `fspack verify`.
#[derive(Debug, Args)]
// One of REF… or --all, and the usage line says so (`<REF>...|--all`).
#[command(group(clap::ArgGroup::new("scope").required(true).args(["references", "all"])))]
pub struct VerifyArgs {
    /// References in the store to check (their manifests, configs and layers).
    #[arg(value_name = "REF")]
    pub references: Vec<String>,
    /// Check every blob in the store, and every blob a tag or a mount names.
    #[arg(long)]
    pub all: bool,
    /// Fetch the bad chunks again (whole blobs where there is no chunk index), verify them and
    /// write them into the stored blob, so mounts using it read the right bytes; fetch a missing
    /// blob whole, as a pull does.
    #[arg(long)]
    pub repair: bool,
    /// Registry options (for --repair).
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Print the result as JSON on stdout (messages stay on stderr).
    #[arg(long)]
    pub json: bool,
    /// Transfer concurrency.
    #[command(flatten)]
    pub jobs: JobsArgs,
    /// The local store.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `fspack mount`.
#[derive(Debug, Args)]
pub struct MountArgs {
    /// Artifact reference, or oci:PATH[:tag] (pulled into the store first if missing).
    #[arg(value_name = "REF")]
    pub reference: String,
    /// Mount point (created when missing, and removed again by `fspack umount`).
    #[arg(value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub dir: PathBuf,
    /// When the artifact is not in the store: mount as soon as the metadata is verified and
    /// fetch data chunks on first read, each verified against the layer's chunk index (model
    /// layers without one: once verified whole); the rest is fetched in the background, and the
    /// mount ends as a plain mount of the store.
    #[arg(long)]
    pub lazy: bool,
    /// Print the result as JSON on stdout (messages stay on stderr).
    #[arg(long)]
    pub json: bool,
    /// Mount options.
    #[command(flatten)]
    pub mount_opts: MountOptsArgs,
    /// Signature and policy checks.
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Transfer concurrency.
    #[command(flatten)]
    pub jobs: JobsArgs,
    /// The local store.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `fspack umount`.
#[derive(Debug, Args)]
pub struct UmountArgs {
    /// Mount point to release.
    #[arg(value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub dir: PathBuf,
    /// The local store.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `fspack ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Print the result as JSON on stdout (messages stay on stderr).
    #[arg(long)]
    pub json: bool,
    /// Wait until every lazy mount has all its data (a progress bar per mount when stderr is a
    /// terminal), then list; fails if a lazy server is gone (exit 3) or a chunk keeps failing
    /// verification (exit 6).
    #[arg(long)]
    pub wait: bool,
    /// The local store.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `fspack inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Artifact reference: host[:port]/repo[:tag][@digest] or oci:PATH[:tag].
    #[arg(value_name = "REF")]
    pub reference: String,
    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Print the result as JSON on stdout (messages stay on stderr).
    #[arg(long)]
    pub json: bool,
}

/// `fspack images`.
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Print the result as JSON on stdout (messages stay on stderr).
    #[arg(long)]
    pub json: bool,
    /// The local store.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `fspack rmi`.
#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Images to remove, as `fspack images` names them (or any reference that means the same).
    #[arg(value_name = "REF", required = true)]
    pub references: Vec<String>,
    /// Print the result as JSON on stdout (messages stay on stderr).
    #[arg(long)]
    pub json: bool,
    /// The local store.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `fspack gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Also remove partial downloads now, whatever their age (they are otherwise kept for a
    /// day so that an interrupted pull or lazy mount resumes); ones in use are kept.
    #[arg(long)]
    pub partial: bool,
    /// Fail at once (exit 1) while another fspack process uses the store, instead of waiting
    /// for it (a lazy mount holds the store until its fill completes).
    #[arg(long)]
    pub no_wait: bool,
    /// Print the result as JSON on stdout (messages stay on stderr).
    #[arg(long)]
    pub json: bool,
    /// The local store.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `fspack login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Registry host[:port].
    #[arg(value_name = "REGISTRY")]
    pub registry: String,
    /// User name.
    #[arg(short, long, value_name = "USER")]
    pub username: String,
    /// Read the password from standard input (required: a password is never taken as an
    /// argument, where other users could read it).
    #[arg(long)]
    pub password_stdin: bool,
}

/// `fspack logout`.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Registry host[:port].
    #[arg(value_name = "REGISTRY")]
    pub registry: String,
}

/// `fspack completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// Shell to print the script for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `fspack generate-docs`.
#[derive(Debug, Args)]
pub struct GenerateDocsArgs {
    /// Directory that receives completions/ and man/.
    #[arg(value_name = "DIR")]
    pub out: PathBuf,
}

/// A `--shards` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shards {
    /// Large files alone, the rest in packs.
    Auto,
    /// At most this many shards.
    Count(usize),
}

fn parse_shards(s: &str) -> Result<Shards, String> {
    if s == "auto" {
        return Ok(Shards::Auto);
    }
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(Shards::Count(n)),
        _ => Err(format!(
            "'{s}' is neither 'auto' nor a number of shards (1 or more)"
        )),
    }
}

fn parse_jobs(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "'{s}' is not a number of parallel transfers (1 or more)"
        )),
    }
}

/// Parses sizes such as `4096`, `64K`, `256M`, `1G`, `1GiB`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size (examples: 4096, 64K, 256M, 1G)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(format!("'{s}' has an unknown unit (use K, M, G or T)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("'{s}' is too large"))
}

fn parse_annotation(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not KEY=VALUE"))?;
    if k.is_empty() {
        return Err(format!("'{s}' has an empty key"));
    }
    Ok((k.to_string(), v.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert!(parse_size("12X").is_err());
        assert!(parse_size("M").is_err());
    }
}
