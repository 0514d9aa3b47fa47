
use builtin;
use str;

set edit:completion:arg-completer[fspack] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'fspack'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'fspack'= {
            cand --store 'Local store (an OCI image layout) for pulled images [default: $FSPACK_STORE, else /var/lib/fspack as root, $XDG_DATA_HOME/fspack otherwise]'
            cand -q 'Print less: no progress bars, only errors and requested data'
            cand --quiet 'Print less: no progress bars, only errors and requested data'
            cand -v 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)'
            cand --verbose 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand build 'Build an EROFS or SquashFS image from a directory'
            cand push 'Push a directory or an image file to a registry (or an OCI layout) as an artifact'
            cand pull 'Download an artifact into the local store, verifying every blob, and optionally mount it'
            cand mount 'Mount an artifact from the local store (pulling it first if needed)'
            cand umount 'Unmount a directory mounted by fspack and release its loop devices'
            cand ls 'List what fspack has mounted: reference, manifest digest, format, devices'
            cand inspect 'Show an artifact''s manifest, layers, sizes and format without downloading its data'
            cand sign 'Sign an artifact''s manifest digest with an ECDSA P-256 key, the way `cosign sign --key` does (signature under the `sha256-<hex>.sig` tag)'
            cand images 'List the images in the local store: reference, digest, format, size, where mounted'
            cand rmi 'Remove images (tags) from the local store; `gc` then frees the blobs nothing else uses'
            cand gc 'Remove blobs from the local store that no tag and no mount uses'
            cand verify 'Re-hash stored blobs and name every bad blob, bad chunk and the mounts that use them'
            cand login 'Check registry credentials with the registry, then store them in the Docker config file'
            cand logout 'Remove stored registry credentials'
            cand completions 'Print a shell completion script'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'fspack;build'= {
            cand -o 'Output image file (chunked EROFS also writes data blobs to OUT.d/; SquashFS shards go to OUT.d/)'
            cand --output 'Output image file (chunked EROFS also writes data blobs to OUT.d/; SquashFS shards go to OUT.d/)'
            cand --layout 'EROFS layout [default: single]'
            cand --format 'Image format [default: erofs]'
            cand --erofs-chunk-size 'Chunk size of large files in the chunked EROFS layout (power of two, at least 4K) [default: 1M]'
            cand --blob-size 'Largest data blob of the chunked EROFS layout, and the pack size of SquashFS shards (files of a quarter of it get blobs or shards of their own); more blobs, more parallelism. At least one EROFS chunk (--erofs-chunk-size). It bounds the data: each pushed blob also carries its chunk index (32 bytes + 48 per MiB), a few KiB more. [default: about 1/16 of the data, a power of two from 16M to 256M]'
            cand --compression 'SquashFS compressor [default: zstd]'
            cand --level 'SquashFS compression level (compressor default when omitted)'
            cand --block-size 'SquashFS block size (power of two from 4K to 1M) [default: 128K]'
            cand --shards 'SquashFS: split the tree into N disjoint images stacked with overlayfs; "auto" gives large files shards of their own [default: 1 for build, auto for push]'
            cand --mtime 'Record this modification time (seconds since the epoch) on every file'
            cand --all-root 'Record every file as owned by root (uid 0, gid 0)'
            cand --one-file-system 'Stay on the source directory''s filesystem: a directory another filesystem is mounted on is stored empty, and a file mounted over (a bind mount) is left out, as with `mksquashfs -one-file-system`'
            cand --strict-acls 'SquashFS: fail on POSIX ACLs (system.posix_acl_*), which the format cannot store, instead of dropping them with a warning (EROFS keeps them)'
            cand --json 'Print the result as JSON on stdout (messages stay on stderr)'
            cand -q 'Print less: no progress bars, only errors and requested data'
            cand --quiet 'Print less: no progress bars, only errors and requested data'
            cand -v 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)'
            cand --verbose 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'fspack;push'= {
            cand --format 'Image format [default: erofs]'
            cand --erofs-chunk-size 'Chunk size of large files in the chunked EROFS layout (power of two, at least 4K) [default: 1M]'
            cand --blob-size 'Largest data blob of the chunked EROFS layout, and the pack size of SquashFS shards (files of a quarter of it get blobs or shards of their own); more blobs, more parallelism. At least one EROFS chunk (--erofs-chunk-size). It bounds the data: each pushed blob also carries its chunk index (32 bytes + 48 per MiB), a few KiB more. [default: about 1/16 of the data, a power of two from 16M to 256M]'
            cand --compression 'SquashFS compressor [default: zstd]'
            cand --level 'SquashFS compression level (compressor default when omitted)'
            cand --block-size 'SquashFS block size (power of two from 4K to 1M) [default: 128K]'
            cand --shards 'SquashFS: split the tree into N disjoint images stacked with overlayfs; "auto" gives large files shards of their own [default: 1 for build, auto for push]'
            cand --mtime 'Record this modification time (seconds since the epoch) on every file'
            cand --chunk-size 'Upload each blob in PATCH chunks of this size instead of one streamed PUT (for proxies that cap request bodies)'
            cand --sign-key 'Sign the pushed manifest with this ECDSA P-256 private key (PKCS#8 PEM), as `fspack sign` does'
            cand --annotation 'Manifest annotation (repeatable)'
            cand --username 'Registry user name (else credentials come from the Docker config)'
            cand --password 'Registry password or token (prefer FSPACK_PASSWORD or `fspack login`)'
            cand -j 'Parallel transfers: blobs at once, and HTTP Range requests within one large blob'
            cand --jobs 'Parallel transfers: blobs at once, and HTTP Range requests within one large blob'
            cand --store 'Local store (an OCI image layout) for pulled images [default: $FSPACK_STORE, else /var/lib/fspack as root, $XDG_DATA_HOME/fspack otherwise]'
            cand --all-root 'Record every file as owned by root (uid 0, gid 0)'
            cand --one-file-system 'Stay on the source directory''s filesystem: a directory another filesystem is mounted on is stored empty, and a file mounted over (a bind mount) is left out, as with `mksquashfs -one-file-system`'
            cand --strict-acls 'SquashFS: fail on POSIX ACLs (system.posix_acl_*), which the format cannot store, instead of dropping them with a warning (EROFS keeps them)'
            cand --modelpack 'Push the directory as a CNCF ModelPack artifact: one raw layer per file, media type by the file''s role, readable by modctl and mounted by fspack with no second copy. Builds no image, so the format options do not apply'
            cand --plain-http 'Allow plain HTTP to the registry (loopback registries use it automatically)'
            cand --insecure 'Skip TLS certificate verification (dangerous)'
            cand --plain-http-credentials 'Allow credentials to go over plain HTTP to a host that is not loopback (anyone on the network path can read them; a warning is printed)'
            cand --json 'Print the result as JSON on stdout (messages stay on stderr)'
            cand -q 'Print less: no progress bars, only errors and requested data'
            cand --quiet 'Print less: no progress bars, only errors and requested data'
            cand -v 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)'
            cand --verbose 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'fspack;pull'= {
            cand --mount 'Mount the image on this directory once pulled (checked first; created when missing, and removed again by `fspack umount`)'
            cand --mount-mode 'How EROFS images are attached (SquashFS always uses loop devices, and refuses `file`)'
            cand --verify-key 'Require a cosign signature of the manifest digest by this public key (PEM; repeatable: every key must have signed), in addition to the policy'
            cand --policy 'Policy file (containers-policy.json shape) [default: /etc/fspack/policy.json when it exists]'
            cand --username 'Registry user name (else credentials come from the Docker config)'
            cand --password 'Registry password or token (prefer FSPACK_PASSWORD or `fspack login`)'
            cand -j 'Parallel transfers: blobs at once, and HTTP Range requests within one large blob'
            cand --jobs 'Parallel transfers: blobs at once, and HTTP Range requests within one large blob'
            cand --store 'Local store (an OCI image layout) for pulled images [default: $FSPACK_STORE, else /var/lib/fspack as root, $XDG_DATA_HOME/fspack otherwise]'
            cand --lazy 'Mount as soon as the metadata is verified and fetch data chunks on first read, each verified against the layer''s chunk index (model layers without one: once verified whole); the rest is fetched in the background, and the mount ends as a plain mount of the store (needs --mount)'
            cand --noexec 'Forbid executing files from the mount'
            cand --plain-http 'Allow plain HTTP to the registry (loopback registries use it automatically)'
            cand --insecure 'Skip TLS certificate verification (dangerous)'
            cand --plain-http-credentials 'Allow credentials to go over plain HTTP to a host that is not loopback (anyone on the network path can read them; a warning is printed)'
            cand --verify 'Also re-hash the blobs the store already had for this reference, and fetch again only the chunks that fail (as `fspack verify REF --repair`)'
            cand --json 'Print the result as JSON on stdout (messages stay on stderr)'
            cand -q 'Print less: no progress bars, only errors and requested data'
            cand --quiet 'Print less: no progress bars, only errors and requested data'
            cand -v 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)'
            cand --verbose 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'fspack;mount'= {
            cand --mount-mode 'How EROFS images are attached (SquashFS always uses loop devices, and refuses `file`)'
            cand --verify-key 'Require a cosign signature of the manifest digest by this public key (PEM; repeatable: every key must have signed), in addition to the policy'
            cand --policy 'Policy file (containers-policy.json shape) [default: /etc/fspack/policy.json when it exists]'
            cand --username 'Registry user name (else credentials come from the Docker config)'
            cand --password 'Registry password or token (prefer FSPACK_PASSWORD or `fspack login`)'
            cand -j 'Parallel transfers: blobs at once, and HTTP Range requests within one large blob'
            cand --jobs 'Parallel transfers: blobs at once, and HTTP Range requests within one large blob'
            cand --store 'Local store (an OCI image layout) for pulled images [default: $FSPACK_STORE, else /var/lib/fspack as root, $XDG_DATA_HOME/fspack otherwise]'
            cand --lazy 'When the artifact is not in the store: mount as soon as the metadata is verified and fetch data chunks on first read, each verified against the layer''s chunk index (model layers without one: once verified whole); the rest is fetched in the background, and the mount ends as a plain mount of the store'
            cand --json 'Print the result as JSON on stdout (messages stay on stderr)'
            cand --noexec 'Forbid executing files from the mount'
            cand --plain-http 'Allow plain HTTP to the registry (loopback registries use it automatically)'
            cand --insecure 'Skip TLS certificate verification (dangerous)'
            cand --plain-http-credentials 'Allow credentials to go over plain HTTP to a host that is not loopback (anyone on the network path can read them; a warning is printed)'
            cand -q 'Print less: no progress bars, only errors and requested data'
            cand --quiet 'Print less: no progress bars, only errors and requested data'
            cand -v 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)'
            cand --verbose 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'fspack;umount'= {
            cand --store 'Local store (an OCI image layout) for pulled images [default: $FSPACK_STORE, else /var/lib/fspack as root, $XDG_DATA_HOME/fspack otherwise]'
            cand -q 'Print less: no progress bars, only errors and requested data'
            cand --quiet 'Print less: no progress bars, only errors and requested data'
            cand -v 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)'
            cand --verbose 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'fspack;ls'= {
            cand --store 'Local store (an OCI image layout) for pulled images [default: $FSPACK_STORE, else /var/lib/fspack as root, $XDG_DATA_HOME/fspack otherwise]'
            cand --json 'Print the result as JSON on stdout (messages stay on stderr)'
            cand --wait 'Wait until every lazy mount has all its data (a progress bar per mount when stderr is a terminal), then list; fails if a lazy server is gone (exit 3) or a chunk keeps failing verification (exit 6)'
            cand -q 'Print less: no progress bars, only errors and requested data'
            cand --quiet 'Print less: no progress bars, only errors and requested data'
            cand -v 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)'
            cand --verbose 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'fspack;inspect'= {
            cand --username 'Registry user name (else credentials come from the Docker config)'
            cand --password 'Registry password or token (prefer FSPACK_PASSWORD or `fspack login`)'
            cand --plain-http 'Allow plain HTTP to the registry (loopback registries use it automatically)'
            cand --insecure 'Skip TLS certificate verification (dangerous)'
            cand --plain-http-credentials 'Allow credentials to go over plain HTTP to a host that is not loopback (anyone on the network path can read them; a warning is printed)'
            cand --json 'Print the result as JSON on stdout (messages stay on stderr)'
            cand -q 'Print less: no progress bars, only errors and requested data'
            cand --quiet 'Print less: no progress bars, only errors and requested data'
            cand -v 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)'
            cand --verbose 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'fspack;sign'= {
            cand --key 'ECDSA P-256 private key, PKCS#8 PEM (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`)'
            cand --username 'Registry user name (else credentials come from the Docker config)'
            cand --password 'Registry password or token (prefer FSPACK_PASSWORD or `fspack login`)'
            cand --plain-http 'Allow plain HTTP to the registry (loopback registries use it automatically)'
            cand --insecure 'Skip TLS certificate verification (dangerous)'
            cand --plain-http-credentials 'Allow credentials to go over plain HTTP to a host that is not loopback (anyone on the network path can read them; a warning is printed)'
            cand --json 'Print the result as JSON on stdout (messages stay on stderr)'
            cand -q 'Print less: no progress bars, only errors and requested data'
            cand --quiet 'Print less: no progress bars, only errors and requested data'
            cand -v 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)'
            cand --verbose 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'fspack;images'= {
            cand --store 'Local store (an OCI image layout) for pulled images [default: $FSPACK_STORE, else /var/lib/fspack as root, $XDG_DATA_HOME/fspack otherwise]'
            cand --json 'Print the result as JSON on stdout (messages stay on stderr)'
            cand -q 'Print less: no progress bars, only errors and requested data'
            cand --quiet 'Print less: no progress bars, only errors and requested data'
            cand -v 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)'
            cand --verbose 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'fspack;rmi'= {
            cand --store 'Local store (an OCI image layout) for pulled images [default: $FSPACK_STORE, else /var/lib/fspack as root, $XDG_DATA_HOME/fspack otherwise]'
            cand --json 'Print the result as JSON on stdout (messages stay on stderr)'
            cand -q 'Print less: no progress bars, only errors and requested data'
            cand --quiet 'Print less: no progress bars, only errors and requested data'
            cand -v 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)'
            cand --verbose 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'fspack;gc'= {
            cand --store 'Local store (an OCI image layout) for pulled images [default: $FSPACK_STORE, else /var/lib/fspack as root, $XDG_DATA_HOME/fspack otherwise]'
            cand --partial 'Also remove partial downloads now, whatever their age (they are otherwise kept for a day so that an interrupted pull or lazy mount resumes); ones in use are kept'
            cand --no-wait 'Fail at once (exit 1) while another fspack process uses the store, instead of waiting for it (a lazy mount holds the store until its fill completes)'
            cand --json 'Print the result as JSON on stdout (messages stay on stderr)'
            cand -q 'Print less: no progress bars, only errors and requested data'
            cand --quiet 'Print less: no progress bars, only errors and requested data'
            cand -v 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)'
            cand --verbose 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'fspack;verify'= {
            cand --username 'Registry user name (else credentials come from the Docker config)'
            cand --password 'Registry password or token (prefer FSPACK_PASSWORD or `fspack login`)'
            cand -j 'Parallel transfers: blobs at once, and HTTP Range requests within one large blob'
            cand --jobs 'Parallel transfers: blobs at once, and HTTP Range requests within one large blob'
            cand --store 'Local store (an OCI image layout) for pulled images [default: $FSPACK_STORE, else /var/lib/fspack as root, $XDG_DATA_HOME/fspack otherwise]'
            cand --all 'Check every blob in the store, and every blob a tag or a mount names'
            cand --repair 'Fetch the bad chunks again (whole blobs where there is no chunk index), verify them and write them into the stored blob, so mounts using it read the right bytes; fetch a missing blob whole, as a pull does'
            cand --plain-http 'Allow plain HTTP to the registry (loopback registries use it automatically)'
            cand --insecure 'Skip TLS certificate verification (dangerous)'
            cand --plain-http-credentials 'Allow credentials to go over plain HTTP to a host that is not loopback (anyone on the network path can read them; a warning is printed)'
            cand --json 'Print the result as JSON on stdout (messages stay on stderr)'
            cand -q 'Print less: no progress bars, only errors and requested data'
            cand --quiet 'Print less: no progress bars, only errors and requested data'
            cand -v 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)'
            cand --verbose 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'fspack;login'= {
            cand -u 'User name'
            cand --username 'User name'
            cand --password-stdin 'Read the password from standard input (required: a password is never taken as an argument, where other users could read it)'
            cand -q 'Print less: no progress bars, only errors and requested data'
            cand --quiet 'Print less: no progress bars, only errors and requested data'
            cand -v 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)'
            cand --verbose 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'fspack;logout'= {
            cand -q 'Print less: no progress bars, only errors and requested data'
            cand --quiet 'Print less: no progress bars, only errors and requested data'
            cand -v 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)'
            cand --verbose 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'fspack;completions'= {
            cand -q 'Print less: no progress bars, only errors and requested data'
            cand --quiet 'Print less: no progress bars, only errors and requested data'
            cand -v 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)'
            cand --verbose 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'fspack;help'= {
            cand build 'Build an EROFS or SquashFS image from a directory'
            cand push 'Push a directory or an image file to a registry (or an OCI layout) as an artifact'
            cand pull 'Download an artifact into the local store, verifying every blob, and optionally mount it'
            cand mount 'Mount an artifact from the local store (pulling it first if needed)'
            cand umount 'Unmount a directory mounted by fspack and release its loop devices'
            cand ls 'List what fspack has mounted: reference, manifest digest, format, devices'
            cand inspect 'Show an artifact''s manifest, layers, sizes and format without downloading its data'
            cand sign 'Sign an artifact''s manifest digest with an ECDSA P-256 key, the way `cosign sign --key` does (signature under the `sha256-<hex>.sig` tag)'
            cand images 'List the images in the local store: reference, digest, format, size, where mounted'
            cand rmi 'Remove images (tags) from the local store; `gc` then frees the blobs nothing else uses'
            cand gc 'Remove blobs from the local store that no tag and no mount uses'
            cand verify 'Re-hash stored blobs and name every bad blob, bad chunk and the mounts that use them'
            cand login 'Check registry credentials with the registry, then store them in the Docker config file'
            cand logout 'Remove stored registry credentials'
            cand completions 'Print a shell completion script'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'fspack;help;build'= {
        }
        &'fspack;help;push'= {
        }
        &'fspack;help;pull'= {
        }
        &'fspack;help;mount'= {
        }
        &'fspack;help;umount'= {
        }
        &'fspack;help;ls'= {
        }
        &'fspack;help;inspect'= {
        }
        &'fspack;help;sign'= {
        }
        &'fspack;help;images'= {
        }
        &'fspack;help;rmi'= {
        }
        &'fspack;help;gc'= {
        }
        &'fspack;help;verify'= {
        }
        &'fspack;help;login'= {
        }
        &'fspack;help;logout'= {
        }
        &'fspack;help;completions'= {
        }
        &'fspack;help;help'= {
        }
    ]
    $completions[$command]
}
