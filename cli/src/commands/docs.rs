//! `fspack completions SHELL` and the hidden `generate-docs DIR`, which writes the committed
//! completion scripts and man pages from the clap definition (a test fails when they are stale).

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

use crate::args::{Cli, CompletionsArgs, GenerateDocsArgs};
use crate::exit;

/// Completion script file names, by shell.
pub const COMPLETION_FILES: &[(Shell, &str)] = &[
    (Shell::Bash, "fspack.bash"),
    (Shell::Zsh, "_fspack"),
    (Shell::Fish, "fspack.fish"),
    (Shell::Elvish, "fspack.elv"),
    (Shell::PowerShell, "_fspack.ps1"),
];

pub fn completions(args: CompletionsArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(&script(args.shell))?;
    out.flush()?;
    Ok(())
}

/// The completion script for `shell`: clap's static script plus, for bash, zsh and fish, dynamic
/// candidates (mount points, references in the store, a repository's tags) from `__complete`.
fn script(shell: Shell) -> Vec<u8> {
    let mut buf = Vec::new();
    if shell == Shell::Bash {
        // clap_complete fills COMPREPLY from compgen by word splitting, which is what compgen's
        // output is for; everything else in the script passes shellcheck.
        buf.extend_from_slice(b"# shellcheck shell=bash disable=SC2207\n");
    }
    clap_complete::generate(shell, &mut visible_command(), "fspack", &mut buf);
    match shell {
        Shell::Bash => buf.extend_from_slice(BASH_DYNAMIC.as_bytes()),
        Shell::Fish => buf.extend_from_slice(FISH_DYNAMIC.as_bytes()),
        Shell::Zsh => {
            return zsh_dynamic(&String::from_utf8(buf).expect("clap writes UTF-8")).into_bytes();
        }
        _ => {}
    }
    buf
}

/// The command line without its hidden subcommands (`generate-docs`, `__complete`,
/// `lazy-serve`): clap_complete offers hidden subcommands too (report item 18), and clap cannot
/// remove a subcommand, so the top level is rebuilt from the visible ones.
fn visible_command() -> clap::Command {
    let full = Cli::command();
    let mut cmd = clap::Command::new("fspack")
        .version(env!("CARGO_PKG_VERSION"))
        .propagate_version(true)
        .subcommand_required(true)
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    if let Some(about) = full.get_about() {
        cmd = cmd.about(about.clone());
    }
    cmd
}

/// zsh: clap completes references with `_default` and mount points with `_files`; point those
/// arguments at functions that ask `fspack __complete`, defined before the script's dispatch.
fn zsh_dynamic(script: &str) -> String {
    let mut out = String::with_capacity(script.len() + ZSH_DYNAMIC.len());
    for line in script.lines() {
        let refs = line.starts_with("':reference -- ") || line.starts_with("'*::references -- ");
        let line = if refs && line.ends_with(":_default' \\") {
            line.replace(":_default' \\", ":_fspack_refs' \\")
        } else if line.starts_with("':dir -- Mount point to release:") {
            line.replace(":_files -/' \\", ":_fspack_mounts' \\")
        } else {
            line.to_string()
        };
        if line.starts_with("if [ \"$funcstack[1]\" = \"_fspack\" ]; then") {
            out.push_str(ZSH_DYNAMIC);
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

const ZSH_DYNAMIC: &str = r#"# Dynamic candidates from fspack itself: references in the local store ("host/repo:" lists the
# registry's tags) and the mount points fspack made.
(( $+functions[_fspack_refs] )) ||
_fspack_refs() {
    local -a refs
    refs=(${(f)"$(fspack __complete refs -- "$PREFIX" 2>/dev/null)"})
    (( ${#refs} )) && compadd -Q -U -- "${refs[@]}"
}
(( $+functions[_fspack_mounts] )) ||
_fspack_mounts() {
    local -a mounts
    mounts=(${(f)"$(fspack __complete mounts -- "$PREFIX" 2>/dev/null)"})
    if (( ${#mounts} )); then compadd -Q -U -- "${mounts[@]}"; else _files -/; fi
}

"#;

const BASH_DYNAMIC: &str = r#"
# Dynamic candidates from fspack itself: mount points for umount, references for mount, pull,
# inspect and push (local store tags; "host/repo:" lists the registry's tags). Words are taken
# from COMP_LINE, not COMP_WORDS, because bash splits references at ':'.
_fspack_dynamic() {
    local line=${COMP_LINE:0:COMP_POINT} cur kind=""
    cur=${line##*[[:space:]]}
    local -a words=() args=()
    read -r -a words <<<"${line% *}"
    [[ $line == *[[:space:]]* ]] || words=()
    local w
    for w in "${words[@]:1}"; do
        [[ $w == -* ]] || args+=("$w")
    done
    case "${args[0]:-}" in
        umount | unmount) ((${#args[@]} == 1)) && kind=mounts ;;
        mount | pull | inspect) ((${#args[@]} == 1)) && kind=refs ;;
        push) ((${#args[@]} == 2)) && kind=refs ;;
        rmi) ((${#args[@]} >= 1)) && kind=refs ;;
    esac
    if [[ -n $kind && $cur != -* ]]; then
        mapfile -t COMPREPLY < <(fspack __complete "$kind" -- "$cur" 2>/dev/null)
        if ((${#COMPREPLY[@]})); then
            # bash replaces only the text after the last ':' of the word: drop what precedes it.
            if [[ $cur == *:* && $COMP_WORDBREAKS == *:* ]]; then
                local prefix=${cur%"${cur##*:}"} i
                for i in "${!COMPREPLY[@]}"; do
                    COMPREPLY[i]=${COMPREPLY[i]#"$prefix"}
                done
            fi
            return 0
        fi
    fi
    _fspack "$@"
}
complete -F _fspack_dynamic -o nosort -o bashdefault -o default fspack
"#;

const FISH_DYNAMIC: &str = r#"
# Dynamic candidates from fspack itself.
complete -c fspack -n "__fish_seen_subcommand_from umount unmount" -f -a "(fspack __complete mounts -- (commandline -ct) 2>/dev/null)"
complete -c fspack -n "__fish_seen_subcommand_from mount pull inspect push rmi" -f -a "(fspack __complete refs -- (commandline -ct) 2>/dev/null)"
"#;

pub fn generate(args: GenerateDocsArgs) -> anyhow::Result<()> {
    let comp = args.out.join("completions");
    let man = args.out.join("man");
    fs::create_dir_all(&comp).with_context(|| format!("cannot create {}", comp.display()))?;
    fs::create_dir_all(&man).with_context(|| format!("cannot create {}", man.display()))?;
    for (shell, name) in COMPLETION_FILES {
        write(&comp.join(name), &script(*shell))?;
    }
    write_man(&man)
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

const ENVIRONMENT: &[(&str, &str)] = &[
    ("FSPACK_STORE", "Local store directory (same as --store)."),
    (
        "FSPACK_POLICY",
        "Trust policy file for pull and mount (same as --policy).",
    ),
    (
        "FSPACK_USERNAME, FSPACK_PASSWORD",
        "Registry credentials (same as --username, --password).",
    ),
    (
        "SOURCE_DATE_EPOCH",
        "Modification time recorded on every file of a built image (same as --mtime).",
    ),
    (
        "DOCKER_CONFIG",
        "Directory of the Docker config.json that holds registry credentials.",
    ),
    (
        "REGISTRY_AUTH_FILE",
        "A containers auth.json read for credentials after the Docker config.",
    ),
    (
        "FSPACK_READ_TIMEOUT_MS",
        "How long a request waits for the next bytes from a registry before it counts as stalled (default 30000; blob transfers wait twice as long). A request that stalls twice fails with exit code 5.",
    ),
    (
        "FSPACK_LAZY_READ_TIMEOUT_MS",
        "How long a read from a lazy mount waits for data not fetched yet before it fails with EIO (default 30000). Once a read has waited that long with the registry unreachable, further reads of missing data fail at once until a fetch succeeds again.",
    ),
    (
        "RUST_LOG",
        "Log filter for -v style diagnostics, e.g. RUST_LOG=debug.",
    ),
    ("NO_COLOR", "Disable colour in error messages."),
];

const FILES: &[(&str, &str)] = &[
    (
        "/var/lib/fspack",
        "The store when running as root: an OCI image layout (index.json, blobs/sha256/) plus ingest/, locks/ and mounts/ (mount records).",
    ),
    ("$XDG_DATA_HOME/fspack", "The store for other users."),
    (
        "/etc/fspack/policy.json",
        "Trust policy read by pull and mount when it exists and no --policy is given: containers-policy.json shape (default, transports.docker and transports.oci scopes; insecureAcceptAnything, reject, sigstoreSigned with keyPath or keyData, pinnedDigest). See docs/threat-model.md.",
    ),
    (
        "~/.docker/config.json",
        "Registry credentials written by fspack login and read by push, pull and inspect.",
    ),
];

fn write_man(dir: &Path) -> anyhow::Result<()> {
    let cmd = Cli::command();
    let mut buf = Vec::new();
    let man = clap_mangen::Man::new(cmd.clone());
    man.render(&mut buf)?;
    let mut buf = synopsis_with_values(buf, &cmd);
    let mut extra = String::new();
    extra.push_str(".SH EXAMPLES\n");
    for (what, line) in [
        (
            "Build an image, push it, pull and mount it on another host:",
            "",
        ),
        ("", "fspack push ./model localhost:5000/models/llama:v1"),
        (
            "",
            "fspack pull localhost:5000/models/llama:v1 --mount /mnt/llama",
        ),
        ("", "fspack ls"),
        ("", "fspack umount /mnt/llama"),
    ] {
        if line.is_empty() {
            extra.push_str(&format!(".PP\n{what}\n"));
        } else {
            extra.push_str(&format!(".IP\n.nf\n{}\n.fi\n", roff_escape(line)));
        }
    }
    extra.push_str(".SH VERIFICATION\n");
    for para in [
        "Before any layer is fetched, pull and mount check the manifest digest a reference resolved to against the policy (--policy, else /etc/fspack/policy.json) and every --verify-key: a sigstoreSigned rule needs a cosign signature (sha256-<hex>.sig tag, simple-signing payload) that verifies with its key and names that digest and that repository. A refusal exits 6 naming the reference, the digest and the rule; nothing beyond the manifest and the signatures was downloaded, nothing is mounted and the store's tag is unchanged.",
        "Before mount(2), every image's metadata is walked in userspace: EROFS superblock and checksum, device table against the layers, inodes, xattrs, directories and chunk indexes; SquashFS tables, metadata blocks, directories, inodes, block lists and fragments. A malformed image exits 6 naming the failed check and never reaches the kernel.",
        "The store is created mode 0700 with blobs 0400; a world-writable or foreign-owned store is refused.",
    ] {
        extra.push_str(&format!(".PP\n{}\n", roff_escape(para)));
    }
    extra.push_str(".SH \"EXIT STATUS\"\n");
    for code in exit::Code::ALL {
        extra.push_str(&format!(
            ".TP\n.B {}\n{}\n",
            code.number(),
            roff_escape(code.meaning())
        ));
    }
    extra.push_str(&format!(
        ".TP\n.B {}\n{}\n",
        exit::INTERRUPTED,
        roff_escape("Interrupted (Ctrl-C or SIGTERM). During build or push: temporary files and directories are removed and the old output is unchanged (no tag is moved). During mount or pull --mount: a mount already made is unmounted with its loop devices and lazy server, and directories fspack created are removed; a re-run resumes the download.")
    ));
    extra.push_str(".SH ENVIRONMENT\n");
    for (k, v) in ENVIRONMENT {
        extra.push_str(&format!(".TP\n.B {}\n{}\n", roff_escape(k), roff_escape(v)));
    }
    extra.push_str(".SH FILES\n");
    for (k, v) in FILES {
        extra.push_str(&format!(".TP\n.I {}\n{}\n", roff_escape(k), roff_escape(v)));
    }
    buf.extend_from_slice(extra.as_bytes());
    write(&dir.join("fspack.1"), &buf)?;
    // Built, so the global options (-q, -v) are propagated into each subcommand's page: an
    // unbuilt subcommand lists only its own arguments.
    let mut built = cmd;
    built.build();
    // `build` also adds clap's own `help` subcommand, which needs no page.
    for sub in built
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let name = format!("fspack-{}", sub.get_name());
        // clap names are &'static str; this runs once per page in a generator command.
        let static_name: &'static str = Box::leak(name.clone().into_boxed_str());
        let sub = sub
            .clone()
            .name(static_name)
            .bin_name(format!("fspack {}", sub.get_name()));
        let mut buf = Vec::new();
        clap_mangen::Man::new(sub.clone()).render(&mut buf)?;
        let mut buf = synopsis_with_values(buf, &sub);
        buf.extend_from_slice(b".SH \"SEE ALSO\"\n.BR fspack (1)\n");
        write(&dir.join(format!("{name}.1")), &buf)?;
    }
    Ok(())
}

/// The man page `page` of `cmd` with each option's value named in its SYNOPSIS line
/// (`[--mount DIR]`, not `[--mount]`). clap_mangen 0.3 lists options there by flag alone, which
/// reads as if `--mount` took no directory; its OPTIONS section already names the values.
fn synopsis_with_values(page: Vec<u8>, cmd: &clap::Command) -> Vec<u8> {
    let page = String::from_utf8(page).expect("clap_mangen writes UTF-8");
    let mut lines: Vec<String> = page.lines().map(str::to_string).collect();
    let Some(at) = lines.iter().position(|l| l == ".SH SYNOPSIS") else {
        return page.into_bytes();
    };
    let Some(line) = lines.get_mut(at + 1) else {
        return page.into_bytes();
    };
    for arg in cmd
        .get_arguments()
        .filter(|a| !a.is_positional() && !a.is_hide_set() && a.get_action().takes_values())
    {
        let Some(long) = arg.get_long() else { continue };
        let value = arg
            .get_value_names()
            .map(|v| v.join(" "))
            .unwrap_or_else(|| arg.get_id().as_str().to_uppercase());
        let flag = format!("\\fB{}\\fR", roff_escape(&format!("--{long}")));
        for close in ["]", ">", "|"] {
            *line = line.replace(
                &format!("{flag}{close}"),
                &format!("{flag} \\fI{}\\fR{close}", roff_escape(&value)),
            );
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out.into_bytes()
}

fn roff_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('-', "\\-")
}
