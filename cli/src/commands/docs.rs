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
        Shell::Bash => {
            buf.extend_from_slice(bash_takes_value(&value_options()).as_bytes());
            buf.extend_from_slice(BASH_DYNAMIC.as_bytes());
        }
        Shell::Fish => {
            buf.extend_from_slice(fish_takes_value(&value_options()).as_bytes());
            buf.extend_from_slice(FISH_DYNAMIC.as_bytes());
        }
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

/// The options that take a value, by command: `("", [--store])` for those before the command,
/// then each visible command's names (with aliases) and its options' spellings (`--jobs`, `-j`).
/// The dynamic completion must not count those values as positional arguments (`push --format
/// squashfs DIR <TAB>` completes the reference), and only the clap definition knows them.
/// Options whose value is optional are left out: the next word may be a positional argument.
fn value_options() -> Vec<(Vec<String>, Vec<String>)> {
    let mut cmd = visible_command();
    // Built, so each argument's number of values is settled (and global options propagated).
    cmd.build();
    let spellings = |c: &clap::Command| -> Vec<String> {
        let mut out = Vec::new();
        for a in c.get_arguments().filter(|a| {
            !a.is_positional()
                && a.get_action().takes_values()
                && a.get_num_args().is_none_or(|n| n.min_values() > 0)
        }) {
            out.extend(
                a.get_long_and_visible_aliases()
                    .into_iter()
                    .flatten()
                    .map(|l| format!("--{l}")),
            );
            out.extend(
                a.get_short_and_visible_aliases()
                    .into_iter()
                    .flatten()
                    .map(|s| format!("-{s}")),
            );
        }
        out
    };
    let mut table = vec![(vec![String::new()], spellings(&cmd))];
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let names = std::iter::once(sub.get_name())
            .chain(sub.get_all_aliases())
            .map(str::to_string)
            .collect();
        table.push((names, spellings(sub)));
    }
    table
}

/// bash: `_fspack_takes_value CMD WORD` succeeds when WORD is an option of CMD ("" before the
/// command) whose value is the next word.
fn bash_takes_value(table: &[(Vec<String>, Vec<String>)]) -> String {
    let mut out = String::from(
        "\n# Options whose value is the next word, by command (\"\" before the command): their values are\n# not positional arguments.\n_fspack_takes_value() {\n    case $1 in\n",
    );
    for (names, opts) in table.iter().filter(|(_, o)| !o.is_empty()) {
        let names: Vec<String> = names
            .iter()
            .map(|n| {
                if n.is_empty() {
                    "\"\"".into()
                } else {
                    n.clone()
                }
            })
            .collect();
        out.push_str(&format!(
            "        {}) case $2 in {}) return 0 ;; esac ;;\n",
            names.join(" | "),
            opts.join(" | ")
        ));
    }
    out.push_str("    esac\n    return 1\n}\n");
    out
}

/// fish: `__fspack_takes_value CMD WORD`, as [`bash_takes_value`].
fn fish_takes_value(table: &[(Vec<String>, Vec<String>)]) -> String {
    let mut out = String::from(
        "\n# Options whose value is the next word, by command (\"\" before the command): their values are\n# not positional arguments.\nfunction __fspack_takes_value\n    switch \"$argv[1]\"\n",
    );
    for (names, opts) in table.iter().filter(|(_, o)| !o.is_empty()) {
        let names: Vec<String> = names
            .iter()
            .map(|n| if n.is_empty() { "''".into() } else { n.clone() })
            .collect();
        out.push_str(&format!(
            "        case {}\n            contains -- $argv[2] {}\n            return\n",
            names.join(" "),
            opts.join(" ")
        ));
    }
    out.push_str("    end\n    return 1\nend\n");
    out
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
# registry's tags) and the mount points fspack made, from the store a --store on the line names
# (before or after the command: $words holds only the command's own words, so the line is read).
(( $+functions[_fspack_store] )) ||
_fspack_store() {
    local -a line
    local i
    line=(${(z)LBUFFER})
    reply=()
    for (( i = 2; i <= ${#line}; i++ )); do
        case $line[i] in
            --) break ;;
            --store) (( i < ${#line} )) && reply=(--store "${(Q)line[i+1]}") ;;
            --store=*) reply=(--store "${(Q)line[i]#--store=}") ;;
        esac
    done
    # A store named as ~/dir: the shell has not expanded it on an unfinished line.
    (( ${#reply} )) && reply[2]=${reply[2]/#\~\//$HOME/}
}
(( $+functions[_fspack_refs] )) ||
_fspack_refs() {
    local -a refs reply
    _fspack_store
    refs=(${(f)"$(fspack __complete refs "${reply[@]}" -- "$PREFIX" 2>/dev/null)"})
    (( ${#refs} )) && compadd -Q -U -- "${refs[@]}"
}
(( $+functions[_fspack_mounts] )) ||
_fspack_mounts() {
    local -a mounts reply
    _fspack_store
    mounts=(${(f)"$(fspack __complete mounts "${reply[@]}" -- "$PREFIX" 2>/dev/null)"})
    if (( ${#mounts} )); then compadd -Q -U -- "${mounts[@]}"; else _files -/; fi
}

"#;

const BASH_DYNAMIC: &str = r#"
# Dynamic candidates from fspack itself: mount points for umount, references for mount, pull,
# inspect and push (local store tags; "host/repo:" lists the registry's tags). Words are taken
# from COMP_LINE, not COMP_WORDS, because bash splits references at ':'. Option values are not
# positional arguments, and a --store on the line is the store __complete reads.
_fspack_dynamic() {
    local line=${COMP_LINE:0:COMP_POINT} cur kind=""
    cur=${line##*[[:space:]]}
    local -a words=() args=() store=()
    read -r -a words <<<"${line% *}"
    [[ $line == *[[:space:]]* ]] || words=()
    local w sub="" value_of="" options=1
    for w in "${words[@]:1}"; do
        if [[ -n $value_of ]]; then
            [[ $value_of == --store ]] && store=(--store "$w")
            value_of=""
        elif ((options)) && [[ $w == -- ]]; then
            options=0
        elif ((options)) && [[ $w == -?* ]]; then
            if [[ $w == --store=* ]]; then
                store=(--store "${w#--store=}")
            elif [[ $w != *=* ]] && _fspack_takes_value "$sub" "$w"; then
                value_of=$w
            fi
        else
            [[ -n $sub ]] || sub=$w
            args+=("$w")
        fi
    done
    # A store named as ~/dir: the shell has not expanded it on an unfinished line.
    [[ ${store[1]:-} == "~"/* ]] && store[1]=$HOME/${store[1]#"~"/}
    [[ -z $value_of ]] && case "$sub" in
        umount | unmount) ((${#args[@]} == 1)) && kind=mounts ;;
        mount | pull | inspect) ((${#args[@]} == 1)) && kind=refs ;;
        push) ((${#args[@]} == 2)) && kind=refs ;;
        rmi) ((${#args[@]} >= 1)) && kind=refs ;;
    esac
    if [[ -n $kind && $cur != -* ]]; then
        mapfile -t COMPREPLY < <(fspack __complete "$kind" "${store[@]}" -- "$cur" 2>/dev/null)
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
# Dynamic candidates from fspack itself. `__fspack_dynamic` prints the arguments for
# `fspack __complete` (the kind, then --store DIR when the line names a store) and fails when
# the word being completed is no mount point or reference: an option's value, a push's source.
function __fspack_dynamic
    set -l sub
    set -l store
    set -l value_of
    set -l options 1
    set -l nargs 0
    for w in (commandline -opc)[2..-1]
        if test -n "$value_of"
            test "$value_of" = --store; and set store $w
            set value_of
        else if test $options = 1; and test "$w" = --
            set options 0
        else if test $options = 1; and string match -q -- '-?*' $w
            if string match -q -- '--store=*' $w
                set store (string replace -- --store= '' $w)
            else if not string match -q -- '*=*' $w; and __fspack_takes_value "$sub" $w
                set value_of $w
            end
        else
            test -n "$sub"; or set sub $w
            set nargs (math $nargs + 1)
        end
    end
    test -z "$value_of"; or return 1
    string match -q -- '-*' (commandline -ct); and return 1
    switch "$sub"
        case umount unmount
            test $nargs = 1; or return 1
            echo mounts
        case mount pull inspect
            test $nargs = 1; or return 1
            echo refs
        case push
            test $nargs = 2; or return 1
            echo refs
        case rmi
            test $nargs -ge 1; or return 1
            echo refs
        case '*'
            return 1
    end
    if test -n "$store"
        echo --store
        # A store named as ~/dir: the shell has not expanded it on an unfinished line.
        string replace -r -- '^~/' "$HOME/" $store
    end
    return 0
end
complete -c fspack -n "__fspack_dynamic >/dev/null" -f -a "(fspack __complete (__fspack_dynamic) -- (commandline -ct) 2>/dev/null)"
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
