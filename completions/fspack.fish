# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_fspack_global_optspecs
    string join \n q/quiet v/verbose store= h/help V/version
end

function __fish_fspack_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_fspack_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_fspack_using_subcommand
    set -l cmd (__fish_fspack_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c fspack -n "__fish_fspack_needs_command" -l store -d 'Local store (an OCI image layout) for pulled images [default: $FSPACK_STORE, else /var/lib/fspack as root, $XDG_DATA_HOME/fspack otherwise]' -r -F
complete -c fspack -n "__fish_fspack_needs_command" -s q -l quiet -d 'Print less: no progress bars, only errors and requested data'
complete -c fspack -n "__fish_fspack_needs_command" -s v -l verbose -d 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack\'s (or set RUST_LOG)'
complete -c fspack -n "__fish_fspack_needs_command" -s h -l help -d 'Print help'
complete -c fspack -n "__fish_fspack_needs_command" -s V -l version -d 'Print version'
complete -c fspack -n "__fish_fspack_needs_command" -f -a "build" -d 'Build an EROFS or SquashFS image from a directory'
complete -c fspack -n "__fish_fspack_needs_command" -f -a "push" -d 'Push a directory or an image file to a registry (or an OCI layout) as an artifact'
complete -c fspack -n "__fish_fspack_needs_command" -f -a "pull" -d 'Download an artifact into the local store, verifying every blob, and optionally mount it'
complete -c fspack -n "__fish_fspack_needs_command" -f -a "mount" -d 'Mount an artifact from the local store (pulling it first if needed)'
complete -c fspack -n "__fish_fspack_needs_command" -f -a "umount" -d 'Unmount a directory mounted by fspack and release its loop devices'
complete -c fspack -n "__fish_fspack_needs_command" -f -a "ls" -d 'List what fspack has mounted: reference, manifest digest, format, devices'
complete -c fspack -n "__fish_fspack_needs_command" -f -a "inspect" -d 'Show an artifact\'s manifest, layers, sizes and format without downloading its data'
complete -c fspack -n "__fish_fspack_needs_command" -f -a "sign" -d 'Sign an artifact\'s manifest digest with an ECDSA P-256 key, the way `cosign sign --key` does (signature under the `sha256-<hex>.sig` tag)'
complete -c fspack -n "__fish_fspack_needs_command" -f -a "images" -d 'List the images in the local store: reference, digest, format, size, where mounted'
complete -c fspack -n "__fish_fspack_needs_command" -f -a "rmi" -d 'Remove images (tags) from the local store; `gc` then frees the blobs nothing else uses'
complete -c fspack -n "__fish_fspack_needs_command" -f -a "gc" -d 'Remove blobs from the local store that no tag and no mount uses'
complete -c fspack -n "__fish_fspack_needs_command" -f -a "verify" -d 'Re-hash stored blobs and name every bad blob, bad chunk and the mounts that use them'
complete -c fspack -n "__fish_fspack_needs_command" -f -a "login" -d 'Check registry credentials with the registry, then store them in the Docker config file'
complete -c fspack -n "__fish_fspack_needs_command" -f -a "logout" -d 'Remove stored registry credentials'
complete -c fspack -n "__fish_fspack_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c fspack -n "__fish_fspack_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c fspack -n "__fish_fspack_using_subcommand build" -s o -l output -d 'Output image file (chunked EROFS also writes data blobs to OUT.d/; SquashFS shards go to OUT.d/)' -r -F
complete -c fspack -n "__fish_fspack_using_subcommand build" -l layout -d 'EROFS layout [default: single]' -r -f -a "single\t'One self-contained image'
chunked\t'A metadata image plus data blobs (EROFS multi-device); what push uses for large trees'"
complete -c fspack -n "__fish_fspack_using_subcommand build" -l format -d 'Image format [default: erofs]' -r -f -a "erofs\t'EROFS: uncompressed, mounts file-backed or from loop devices; multi-device chunked layout'
squashfs\t'SquashFS: compressed, widely deployed; shards are stacked with overlayfs'"
complete -c fspack -n "__fish_fspack_using_subcommand build" -l erofs-chunk-size -d 'Chunk size of large files in the chunked EROFS layout (power of two, at least 4K) [default: 1M]' -r
complete -c fspack -n "__fish_fspack_using_subcommand build" -l blob-size -d 'Largest data blob of the chunked EROFS layout, and the pack size of SquashFS shards (files of a quarter of it get blobs or shards of their own); more blobs, more parallelism. At least one EROFS chunk (--erofs-chunk-size). It bounds the data: each pushed blob also carries its chunk index (32 bytes + 48 per MiB), a few KiB more. [default: about 1/16 of the data, a power of two from 16M to 256M]' -r
complete -c fspack -n "__fish_fspack_using_subcommand build" -l compression -d 'SquashFS compressor [default: zstd]' -r -f -a "zstd\t'zstd (default)'
gzip\t'gzip (zlib)'
xz\t'xz'
lz4\t'lz4'
lzo\t'lzo'"
complete -c fspack -n "__fish_fspack_using_subcommand build" -l level -d 'SquashFS compression level (compressor default when omitted)' -r
complete -c fspack -n "__fish_fspack_using_subcommand build" -l block-size -d 'SquashFS block size (power of two from 4K to 1M) [default: 128K]' -r
complete -c fspack -n "__fish_fspack_using_subcommand build" -l shards -d 'SquashFS: split the tree into N disjoint images stacked with overlayfs; "auto" gives large files shards of their own [default: 1 for build, auto for push]' -r
complete -c fspack -n "__fish_fspack_using_subcommand build" -l mtime -d 'Record this modification time (seconds since the epoch) on every file' -r
complete -c fspack -n "__fish_fspack_using_subcommand build" -l all-root -d 'Record every file as owned by root (uid 0, gid 0)'
complete -c fspack -n "__fish_fspack_using_subcommand build" -l one-file-system -d 'Stay on the source directory\'s filesystem: a directory another filesystem is mounted on is stored empty, and a file mounted over (a bind mount) is left out, as with `mksquashfs -one-file-system`'
complete -c fspack -n "__fish_fspack_using_subcommand build" -l strict-acls -d 'SquashFS: fail on POSIX ACLs (system.posix_acl_*), which the format cannot store, instead of dropping them with a warning (EROFS keeps them)'
complete -c fspack -n "__fish_fspack_using_subcommand build" -l json -d 'Print the result as JSON on stdout (messages stay on stderr)'
complete -c fspack -n "__fish_fspack_using_subcommand build" -s q -l quiet -d 'Print less: no progress bars, only errors and requested data'
complete -c fspack -n "__fish_fspack_using_subcommand build" -s v -l verbose -d 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack\'s (or set RUST_LOG)'
complete -c fspack -n "__fish_fspack_using_subcommand build" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c fspack -n "__fish_fspack_using_subcommand build" -s V -l version -d 'Print version'
complete -c fspack -n "__fish_fspack_using_subcommand push" -l format -d 'Image format [default: erofs]' -r -f -a "erofs\t'EROFS: uncompressed, mounts file-backed or from loop devices; multi-device chunked layout'
squashfs\t'SquashFS: compressed, widely deployed; shards are stacked with overlayfs'"
complete -c fspack -n "__fish_fspack_using_subcommand push" -l erofs-chunk-size -d 'Chunk size of large files in the chunked EROFS layout (power of two, at least 4K) [default: 1M]' -r
complete -c fspack -n "__fish_fspack_using_subcommand push" -l blob-size -d 'Largest data blob of the chunked EROFS layout, and the pack size of SquashFS shards (files of a quarter of it get blobs or shards of their own); more blobs, more parallelism. At least one EROFS chunk (--erofs-chunk-size). It bounds the data: each pushed blob also carries its chunk index (32 bytes + 48 per MiB), a few KiB more. [default: about 1/16 of the data, a power of two from 16M to 256M]' -r
complete -c fspack -n "__fish_fspack_using_subcommand push" -l compression -d 'SquashFS compressor [default: zstd]' -r -f -a "zstd\t'zstd (default)'
gzip\t'gzip (zlib)'
xz\t'xz'
lz4\t'lz4'
lzo\t'lzo'"
complete -c fspack -n "__fish_fspack_using_subcommand push" -l level -d 'SquashFS compression level (compressor default when omitted)' -r
complete -c fspack -n "__fish_fspack_using_subcommand push" -l block-size -d 'SquashFS block size (power of two from 4K to 1M) [default: 128K]' -r
complete -c fspack -n "__fish_fspack_using_subcommand push" -l shards -d 'SquashFS: split the tree into N disjoint images stacked with overlayfs; "auto" gives large files shards of their own [default: 1 for build, auto for push]' -r
complete -c fspack -n "__fish_fspack_using_subcommand push" -l mtime -d 'Record this modification time (seconds since the epoch) on every file' -r
complete -c fspack -n "__fish_fspack_using_subcommand push" -l chunk-size -d 'Upload each blob in PATCH chunks of this size instead of one streamed PUT (for proxies that cap request bodies)' -r
complete -c fspack -n "__fish_fspack_using_subcommand push" -l sign-key -d 'Sign the pushed manifest with this ECDSA P-256 private key (PKCS#8 PEM), as `fspack sign` does' -r -F
complete -c fspack -n "__fish_fspack_using_subcommand push" -l annotation -d 'Manifest annotation (repeatable)' -r
complete -c fspack -n "__fish_fspack_using_subcommand push" -l username -d 'Registry user name (else credentials come from the Docker config)' -r
complete -c fspack -n "__fish_fspack_using_subcommand push" -l password -d 'Registry password or token (prefer FSPACK_PASSWORD or `fspack login`)' -r
complete -c fspack -n "__fish_fspack_using_subcommand push" -s j -l jobs -d 'Parallel transfers: blobs at once, and HTTP Range requests within one large blob' -r
complete -c fspack -n "__fish_fspack_using_subcommand push" -l store -d 'Local store (an OCI image layout) for pulled images [default: $FSPACK_STORE, else /var/lib/fspack as root, $XDG_DATA_HOME/fspack otherwise]' -r -F
complete -c fspack -n "__fish_fspack_using_subcommand push" -l all-root -d 'Record every file as owned by root (uid 0, gid 0)'
complete -c fspack -n "__fish_fspack_using_subcommand push" -l one-file-system -d 'Stay on the source directory\'s filesystem: a directory another filesystem is mounted on is stored empty, and a file mounted over (a bind mount) is left out, as with `mksquashfs -one-file-system`'
complete -c fspack -n "__fish_fspack_using_subcommand push" -l strict-acls -d 'SquashFS: fail on POSIX ACLs (system.posix_acl_*), which the format cannot store, instead of dropping them with a warning (EROFS keeps them)'
complete -c fspack -n "__fish_fspack_using_subcommand push" -l modelpack -d 'Push the directory as a CNCF ModelPack artifact: one raw layer per file, media type by the file\'s role, readable by modctl and mounted by fspack with no second copy. Builds no image, so the format options do not apply'
complete -c fspack -n "__fish_fspack_using_subcommand push" -l plain-http -d 'Allow plain HTTP to the registry (loopback registries use it automatically)'
complete -c fspack -n "__fish_fspack_using_subcommand push" -l insecure -d 'Skip TLS certificate verification (dangerous)'
complete -c fspack -n "__fish_fspack_using_subcommand push" -l plain-http-credentials -d 'Allow credentials to go over plain HTTP to a host that is not loopback (anyone on the network path can read them; a warning is printed)'
complete -c fspack -n "__fish_fspack_using_subcommand push" -l json -d 'Print the result as JSON on stdout (messages stay on stderr)'
complete -c fspack -n "__fish_fspack_using_subcommand push" -s q -l quiet -d 'Print less: no progress bars, only errors and requested data'
complete -c fspack -n "__fish_fspack_using_subcommand push" -s v -l verbose -d 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack\'s (or set RUST_LOG)'
complete -c fspack -n "__fish_fspack_using_subcommand push" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c fspack -n "__fish_fspack_using_subcommand push" -s V -l version -d 'Print version'
complete -c fspack -n "__fish_fspack_using_subcommand pull" -l mount -d 'Mount the image on this directory once pulled (checked first; created when missing, and removed again by `fspack umount`)' -r -f -a "(__fish_complete_directories)"
complete -c fspack -n "__fish_fspack_using_subcommand pull" -l mount-mode -d 'How EROFS images are attached (SquashFS always uses loop devices, and refuses `file`)' -r -f -a "auto\t'File-backed where the kernel supports it (Linux 6.12+), loop devices otherwise'
file\t'Mount the image files directly (EROFS only, Linux 6.12+)'
loop\t'Attach read-only loop devices'"
complete -c fspack -n "__fish_fspack_using_subcommand pull" -l verify-key -d 'Require a cosign signature of the manifest digest by this public key (PEM; repeatable: every key must have signed), in addition to the policy' -r -F
complete -c fspack -n "__fish_fspack_using_subcommand pull" -l policy -d 'Policy file (containers-policy.json shape) [default: /etc/fspack/policy.json when it exists]' -r -F
complete -c fspack -n "__fish_fspack_using_subcommand pull" -l username -d 'Registry user name (else credentials come from the Docker config)' -r
complete -c fspack -n "__fish_fspack_using_subcommand pull" -l password -d 'Registry password or token (prefer FSPACK_PASSWORD or `fspack login`)' -r
complete -c fspack -n "__fish_fspack_using_subcommand pull" -s j -l jobs -d 'Parallel transfers: blobs at once, and HTTP Range requests within one large blob' -r
complete -c fspack -n "__fish_fspack_using_subcommand pull" -l store -d 'Local store (an OCI image layout) for pulled images [default: $FSPACK_STORE, else /var/lib/fspack as root, $XDG_DATA_HOME/fspack otherwise]' -r -F
complete -c fspack -n "__fish_fspack_using_subcommand pull" -l lazy -d 'Mount as soon as the metadata is verified and fetch data chunks on first read, each verified against the layer\'s chunk index (model layers without one: once verified whole); the rest is fetched in the background, and the mount ends as a plain mount of the store (needs --mount)'
complete -c fspack -n "__fish_fspack_using_subcommand pull" -l noexec -d 'Forbid executing files from the mount'
complete -c fspack -n "__fish_fspack_using_subcommand pull" -l plain-http -d 'Allow plain HTTP to the registry (loopback registries use it automatically)'
complete -c fspack -n "__fish_fspack_using_subcommand pull" -l insecure -d 'Skip TLS certificate verification (dangerous)'
complete -c fspack -n "__fish_fspack_using_subcommand pull" -l plain-http-credentials -d 'Allow credentials to go over plain HTTP to a host that is not loopback (anyone on the network path can read them; a warning is printed)'
complete -c fspack -n "__fish_fspack_using_subcommand pull" -l verify -d 'Also re-hash the blobs the store already had for this reference, and fetch again only the chunks that fail (as `fspack verify REF --repair`)'
complete -c fspack -n "__fish_fspack_using_subcommand pull" -l json -d 'Print the result as JSON on stdout (messages stay on stderr)'
complete -c fspack -n "__fish_fspack_using_subcommand pull" -s q -l quiet -d 'Print less: no progress bars, only errors and requested data'
complete -c fspack -n "__fish_fspack_using_subcommand pull" -s v -l verbose -d 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack\'s (or set RUST_LOG)'
complete -c fspack -n "__fish_fspack_using_subcommand pull" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c fspack -n "__fish_fspack_using_subcommand pull" -s V -l version -d 'Print version'
complete -c fspack -n "__fish_fspack_using_subcommand mount" -l mount-mode -d 'How EROFS images are attached (SquashFS always uses loop devices, and refuses `file`)' -r -f -a "auto\t'File-backed where the kernel supports it (Linux 6.12+), loop devices otherwise'
file\t'Mount the image files directly (EROFS only, Linux 6.12+)'
loop\t'Attach read-only loop devices'"
complete -c fspack -n "__fish_fspack_using_subcommand mount" -l verify-key -d 'Require a cosign signature of the manifest digest by this public key (PEM; repeatable: every key must have signed), in addition to the policy' -r -F
complete -c fspack -n "__fish_fspack_using_subcommand mount" -l policy -d 'Policy file (containers-policy.json shape) [default: /etc/fspack/policy.json when it exists]' -r -F
complete -c fspack -n "__fish_fspack_using_subcommand mount" -l username -d 'Registry user name (else credentials come from the Docker config)' -r
complete -c fspack -n "__fish_fspack_using_subcommand mount" -l password -d 'Registry password or token (prefer FSPACK_PASSWORD or `fspack login`)' -r
complete -c fspack -n "__fish_fspack_using_subcommand mount" -s j -l jobs -d 'Parallel transfers: blobs at once, and HTTP Range requests within one large blob' -r
complete -c fspack -n "__fish_fspack_using_subcommand mount" -l store -d 'Local store (an OCI image layout) for pulled images [default: $FSPACK_STORE, else /var/lib/fspack as root, $XDG_DATA_HOME/fspack otherwise]' -r -F
complete -c fspack -n "__fish_fspack_using_subcommand mount" -l lazy -d 'When the artifact is not in the store: mount as soon as the metadata is verified and fetch data chunks on first read, each verified against the layer\'s chunk index (model layers without one: once verified whole); the rest is fetched in the background, and the mount ends as a plain mount of the store'
complete -c fspack -n "__fish_fspack_using_subcommand mount" -l json -d 'Print the result as JSON on stdout (messages stay on stderr)'
complete -c fspack -n "__fish_fspack_using_subcommand mount" -l noexec -d 'Forbid executing files from the mount'
complete -c fspack -n "__fish_fspack_using_subcommand mount" -l plain-http -d 'Allow plain HTTP to the registry (loopback registries use it automatically)'
complete -c fspack -n "__fish_fspack_using_subcommand mount" -l insecure -d 'Skip TLS certificate verification (dangerous)'
complete -c fspack -n "__fish_fspack_using_subcommand mount" -l plain-http-credentials -d 'Allow credentials to go over plain HTTP to a host that is not loopback (anyone on the network path can read them; a warning is printed)'
complete -c fspack -n "__fish_fspack_using_subcommand mount" -s q -l quiet -d 'Print less: no progress bars, only errors and requested data'
complete -c fspack -n "__fish_fspack_using_subcommand mount" -s v -l verbose -d 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack\'s (or set RUST_LOG)'
complete -c fspack -n "__fish_fspack_using_subcommand mount" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c fspack -n "__fish_fspack_using_subcommand mount" -s V -l version -d 'Print version'
complete -c fspack -n "__fish_fspack_using_subcommand umount" -l store -d 'Local store (an OCI image layout) for pulled images [default: $FSPACK_STORE, else /var/lib/fspack as root, $XDG_DATA_HOME/fspack otherwise]' -r -F
complete -c fspack -n "__fish_fspack_using_subcommand umount" -s q -l quiet -d 'Print less: no progress bars, only errors and requested data'
complete -c fspack -n "__fish_fspack_using_subcommand umount" -s v -l verbose -d 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack\'s (or set RUST_LOG)'
complete -c fspack -n "__fish_fspack_using_subcommand umount" -s h -l help -d 'Print help'
complete -c fspack -n "__fish_fspack_using_subcommand umount" -s V -l version -d 'Print version'
complete -c fspack -n "__fish_fspack_using_subcommand ls" -l store -d 'Local store (an OCI image layout) for pulled images [default: $FSPACK_STORE, else /var/lib/fspack as root, $XDG_DATA_HOME/fspack otherwise]' -r -F
complete -c fspack -n "__fish_fspack_using_subcommand ls" -l json -d 'Print the result as JSON on stdout (messages stay on stderr)'
complete -c fspack -n "__fish_fspack_using_subcommand ls" -l wait -d 'Wait until every lazy mount has all its data (a progress bar per mount when stderr is a terminal), then list; fails if a lazy server is gone (exit 3) or a chunk keeps failing verification (exit 6)'
complete -c fspack -n "__fish_fspack_using_subcommand ls" -s q -l quiet -d 'Print less: no progress bars, only errors and requested data'
complete -c fspack -n "__fish_fspack_using_subcommand ls" -s v -l verbose -d 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack\'s (or set RUST_LOG)'
complete -c fspack -n "__fish_fspack_using_subcommand ls" -s h -l help -d 'Print help'
complete -c fspack -n "__fish_fspack_using_subcommand ls" -s V -l version -d 'Print version'
complete -c fspack -n "__fish_fspack_using_subcommand inspect" -l username -d 'Registry user name (else credentials come from the Docker config)' -r
complete -c fspack -n "__fish_fspack_using_subcommand inspect" -l password -d 'Registry password or token (prefer FSPACK_PASSWORD or `fspack login`)' -r
complete -c fspack -n "__fish_fspack_using_subcommand inspect" -l plain-http -d 'Allow plain HTTP to the registry (loopback registries use it automatically)'
complete -c fspack -n "__fish_fspack_using_subcommand inspect" -l insecure -d 'Skip TLS certificate verification (dangerous)'
complete -c fspack -n "__fish_fspack_using_subcommand inspect" -l plain-http-credentials -d 'Allow credentials to go over plain HTTP to a host that is not loopback (anyone on the network path can read them; a warning is printed)'
complete -c fspack -n "__fish_fspack_using_subcommand inspect" -l json -d 'Print the result as JSON on stdout (messages stay on stderr)'
complete -c fspack -n "__fish_fspack_using_subcommand inspect" -s q -l quiet -d 'Print less: no progress bars, only errors and requested data'
complete -c fspack -n "__fish_fspack_using_subcommand inspect" -s v -l verbose -d 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack\'s (or set RUST_LOG)'
complete -c fspack -n "__fish_fspack_using_subcommand inspect" -s h -l help -d 'Print help'
complete -c fspack -n "__fish_fspack_using_subcommand inspect" -s V -l version -d 'Print version'
complete -c fspack -n "__fish_fspack_using_subcommand sign" -l key -d 'ECDSA P-256 private key, PKCS#8 PEM (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`)' -r -F
complete -c fspack -n "__fish_fspack_using_subcommand sign" -l username -d 'Registry user name (else credentials come from the Docker config)' -r
complete -c fspack -n "__fish_fspack_using_subcommand sign" -l password -d 'Registry password or token (prefer FSPACK_PASSWORD or `fspack login`)' -r
complete -c fspack -n "__fish_fspack_using_subcommand sign" -l plain-http -d 'Allow plain HTTP to the registry (loopback registries use it automatically)'
complete -c fspack -n "__fish_fspack_using_subcommand sign" -l insecure -d 'Skip TLS certificate verification (dangerous)'
complete -c fspack -n "__fish_fspack_using_subcommand sign" -l plain-http-credentials -d 'Allow credentials to go over plain HTTP to a host that is not loopback (anyone on the network path can read them; a warning is printed)'
complete -c fspack -n "__fish_fspack_using_subcommand sign" -l json -d 'Print the result as JSON on stdout (messages stay on stderr)'
complete -c fspack -n "__fish_fspack_using_subcommand sign" -s q -l quiet -d 'Print less: no progress bars, only errors and requested data'
complete -c fspack -n "__fish_fspack_using_subcommand sign" -s v -l verbose -d 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack\'s (or set RUST_LOG)'
complete -c fspack -n "__fish_fspack_using_subcommand sign" -s h -l help -d 'Print help'
complete -c fspack -n "__fish_fspack_using_subcommand sign" -s V -l version -d 'Print version'
complete -c fspack -n "__fish_fspack_using_subcommand images" -l store -d 'Local store (an OCI image layout) for pulled images [default: $FSPACK_STORE, else /var/lib/fspack as root, $XDG_DATA_HOME/fspack otherwise]' -r -F
complete -c fspack -n "__fish_fspack_using_subcommand images" -l json -d 'Print the result as JSON on stdout (messages stay on stderr)'
complete -c fspack -n "__fish_fspack_using_subcommand images" -s q -l quiet -d 'Print less: no progress bars, only errors and requested data'
complete -c fspack -n "__fish_fspack_using_subcommand images" -s v -l verbose -d 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack\'s (or set RUST_LOG)'
complete -c fspack -n "__fish_fspack_using_subcommand images" -s h -l help -d 'Print help'
complete -c fspack -n "__fish_fspack_using_subcommand images" -s V -l version -d 'Print version'
complete -c fspack -n "__fish_fspack_using_subcommand rmi" -l store -d 'Local store (an OCI image layout) for pulled images [default: $FSPACK_STORE, else /var/lib/fspack as root, $XDG_DATA_HOME/fspack otherwise]' -r -F
complete -c fspack -n "__fish_fspack_using_subcommand rmi" -l json -d 'Print the result as JSON on stdout (messages stay on stderr)'
complete -c fspack -n "__fish_fspack_using_subcommand rmi" -s q -l quiet -d 'Print less: no progress bars, only errors and requested data'
complete -c fspack -n "__fish_fspack_using_subcommand rmi" -s v -l verbose -d 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack\'s (or set RUST_LOG)'
complete -c fspack -n "__fish_fspack_using_subcommand rmi" -s h -l help -d 'Print help'
complete -c fspack -n "__fish_fspack_using_subcommand rmi" -s V -l version -d 'Print version'
complete -c fspack -n "__fish_fspack_using_subcommand gc" -l store -d 'Local store (an OCI image layout) for pulled images [default: $FSPACK_STORE, else /var/lib/fspack as root, $XDG_DATA_HOME/fspack otherwise]' -r -F
complete -c fspack -n "__fish_fspack_using_subcommand gc" -l partial -d 'Also remove partial downloads now, whatever their age (they are otherwise kept for a day so that an interrupted pull or lazy mount resumes); ones in use are kept'
complete -c fspack -n "__fish_fspack_using_subcommand gc" -l no-wait -d 'Fail at once (exit 1) while another fspack process uses the store, instead of waiting for it (a lazy mount holds the store until its fill completes)'
complete -c fspack -n "__fish_fspack_using_subcommand gc" -l json -d 'Print the result as JSON on stdout (messages stay on stderr)'
complete -c fspack -n "__fish_fspack_using_subcommand gc" -s q -l quiet -d 'Print less: no progress bars, only errors and requested data'
complete -c fspack -n "__fish_fspack_using_subcommand gc" -s v -l verbose -d 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack\'s (or set RUST_LOG)'
complete -c fspack -n "__fish_fspack_using_subcommand gc" -s h -l help -d 'Print help'
complete -c fspack -n "__fish_fspack_using_subcommand gc" -s V -l version -d 'Print version'
complete -c fspack -n "__fish_fspack_using_subcommand verify" -l username -d 'Registry user name (else credentials come from the Docker config)' -r
complete -c fspack -n "__fish_fspack_using_subcommand verify" -l password -d 'Registry password or token (prefer FSPACK_PASSWORD or `fspack login`)' -r
complete -c fspack -n "__fish_fspack_using_subcommand verify" -s j -l jobs -d 'Parallel transfers: blobs at once, and HTTP Range requests within one large blob' -r
complete -c fspack -n "__fish_fspack_using_subcommand verify" -l store -d 'Local store (an OCI image layout) for pulled images [default: $FSPACK_STORE, else /var/lib/fspack as root, $XDG_DATA_HOME/fspack otherwise]' -r -F
complete -c fspack -n "__fish_fspack_using_subcommand verify" -l all -d 'Check every blob in the store, and every blob a tag or a mount names'
complete -c fspack -n "__fish_fspack_using_subcommand verify" -l repair -d 'Fetch the bad chunks again (whole blobs where there is no chunk index), verify them and write them into the stored blob, so mounts using it read the right bytes; fetch a missing blob whole, as a pull does'
complete -c fspack -n "__fish_fspack_using_subcommand verify" -l plain-http -d 'Allow plain HTTP to the registry (loopback registries use it automatically)'
complete -c fspack -n "__fish_fspack_using_subcommand verify" -l insecure -d 'Skip TLS certificate verification (dangerous)'
complete -c fspack -n "__fish_fspack_using_subcommand verify" -l plain-http-credentials -d 'Allow credentials to go over plain HTTP to a host that is not loopback (anyone on the network path can read them; a warning is printed)'
complete -c fspack -n "__fish_fspack_using_subcommand verify" -l json -d 'Print the result as JSON on stdout (messages stay on stderr)'
complete -c fspack -n "__fish_fspack_using_subcommand verify" -s q -l quiet -d 'Print less: no progress bars, only errors and requested data'
complete -c fspack -n "__fish_fspack_using_subcommand verify" -s v -l verbose -d 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack\'s (or set RUST_LOG)'
complete -c fspack -n "__fish_fspack_using_subcommand verify" -s h -l help -d 'Print help'
complete -c fspack -n "__fish_fspack_using_subcommand verify" -s V -l version -d 'Print version'
complete -c fspack -n "__fish_fspack_using_subcommand login" -s u -l username -d 'User name' -r
complete -c fspack -n "__fish_fspack_using_subcommand login" -l password-stdin -d 'Read the password from standard input (required: a password is never taken as an argument, where other users could read it)'
complete -c fspack -n "__fish_fspack_using_subcommand login" -s q -l quiet -d 'Print less: no progress bars, only errors and requested data'
complete -c fspack -n "__fish_fspack_using_subcommand login" -s v -l verbose -d 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack\'s (or set RUST_LOG)'
complete -c fspack -n "__fish_fspack_using_subcommand login" -s h -l help -d 'Print help'
complete -c fspack -n "__fish_fspack_using_subcommand login" -s V -l version -d 'Print version'
complete -c fspack -n "__fish_fspack_using_subcommand logout" -s q -l quiet -d 'Print less: no progress bars, only errors and requested data'
complete -c fspack -n "__fish_fspack_using_subcommand logout" -s v -l verbose -d 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack\'s (or set RUST_LOG)'
complete -c fspack -n "__fish_fspack_using_subcommand logout" -s h -l help -d 'Print help'
complete -c fspack -n "__fish_fspack_using_subcommand logout" -s V -l version -d 'Print version'
complete -c fspack -n "__fish_fspack_using_subcommand completions" -s q -l quiet -d 'Print less: no progress bars, only errors and requested data'
complete -c fspack -n "__fish_fspack_using_subcommand completions" -s v -l verbose -d 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack\'s (or set RUST_LOG)'
complete -c fspack -n "__fish_fspack_using_subcommand completions" -s h -l help -d 'Print help'
complete -c fspack -n "__fish_fspack_using_subcommand completions" -s V -l version -d 'Print version'
complete -c fspack -n "__fish_fspack_using_subcommand help; and not __fish_seen_subcommand_from build push pull mount umount ls inspect sign images rmi gc verify login logout completions help" -f -a "build" -d 'Build an EROFS or SquashFS image from a directory'
complete -c fspack -n "__fish_fspack_using_subcommand help; and not __fish_seen_subcommand_from build push pull mount umount ls inspect sign images rmi gc verify login logout completions help" -f -a "push" -d 'Push a directory or an image file to a registry (or an OCI layout) as an artifact'
complete -c fspack -n "__fish_fspack_using_subcommand help; and not __fish_seen_subcommand_from build push pull mount umount ls inspect sign images rmi gc verify login logout completions help" -f -a "pull" -d 'Download an artifact into the local store, verifying every blob, and optionally mount it'
complete -c fspack -n "__fish_fspack_using_subcommand help; and not __fish_seen_subcommand_from build push pull mount umount ls inspect sign images rmi gc verify login logout completions help" -f -a "mount" -d 'Mount an artifact from the local store (pulling it first if needed)'
complete -c fspack -n "__fish_fspack_using_subcommand help; and not __fish_seen_subcommand_from build push pull mount umount ls inspect sign images rmi gc verify login logout completions help" -f -a "umount" -d 'Unmount a directory mounted by fspack and release its loop devices'
complete -c fspack -n "__fish_fspack_using_subcommand help; and not __fish_seen_subcommand_from build push pull mount umount ls inspect sign images rmi gc verify login logout completions help" -f -a "ls" -d 'List what fspack has mounted: reference, manifest digest, format, devices'
complete -c fspack -n "__fish_fspack_using_subcommand help; and not __fish_seen_subcommand_from build push pull mount umount ls inspect sign images rmi gc verify login logout completions help" -f -a "inspect" -d 'Show an artifact\'s manifest, layers, sizes and format without downloading its data'
complete -c fspack -n "__fish_fspack_using_subcommand help; and not __fish_seen_subcommand_from build push pull mount umount ls inspect sign images rmi gc verify login logout completions help" -f -a "sign" -d 'Sign an artifact\'s manifest digest with an ECDSA P-256 key, the way `cosign sign --key` does (signature under the `sha256-<hex>.sig` tag)'
complete -c fspack -n "__fish_fspack_using_subcommand help; and not __fish_seen_subcommand_from build push pull mount umount ls inspect sign images rmi gc verify login logout completions help" -f -a "images" -d 'List the images in the local store: reference, digest, format, size, where mounted'
complete -c fspack -n "__fish_fspack_using_subcommand help; and not __fish_seen_subcommand_from build push pull mount umount ls inspect sign images rmi gc verify login logout completions help" -f -a "rmi" -d 'Remove images (tags) from the local store; `gc` then frees the blobs nothing else uses'
complete -c fspack -n "__fish_fspack_using_subcommand help; and not __fish_seen_subcommand_from build push pull mount umount ls inspect sign images rmi gc verify login logout completions help" -f -a "gc" -d 'Remove blobs from the local store that no tag and no mount uses'
complete -c fspack -n "__fish_fspack_using_subcommand help; and not __fish_seen_subcommand_from build push pull mount umount ls inspect sign images rmi gc verify login logout completions help" -f -a "verify" -d 'Re-hash stored blobs and name every bad blob, bad chunk and the mounts that use them'
complete -c fspack -n "__fish_fspack_using_subcommand help; and not __fish_seen_subcommand_from build push pull mount umount ls inspect sign images rmi gc verify login logout completions help" -f -a "login" -d 'Check registry credentials with the registry, then store them in the Docker config file'
complete -c fspack -n "__fish_fspack_using_subcommand help; and not __fish_seen_subcommand_from build push pull mount umount ls inspect sign images rmi gc verify login logout completions help" -f -a "logout" -d 'Remove stored registry credentials'
complete -c fspack -n "__fish_fspack_using_subcommand help; and not __fish_seen_subcommand_from build push pull mount umount ls inspect sign images rmi gc verify login logout completions help" -f -a "completions" -d 'Print a shell completion script'
complete -c fspack -n "__fish_fspack_using_subcommand help; and not __fish_seen_subcommand_from build push pull mount umount ls inspect sign images rmi gc verify login logout completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'

# Options whose value is the next word, by command ("" before the command): their values are
# not positional arguments.
function __fspack_takes_value
    switch "$argv[1]"
        case ''
            contains -- $argv[2] --store
            return
        case build
            contains -- $argv[2] --output -o --layout --format --erofs-chunk-size --blob-size --compression --level --block-size --shards --mtime
            return
        case push
            contains -- $argv[2] --format --erofs-chunk-size --blob-size --compression --level --block-size --shards --mtime --chunk-size --sign-key --annotation --username --password --jobs -j --store
            return
        case pull
            contains -- $argv[2] --mount --mount-mode --verify-key --policy --username --password --jobs -j --store
            return
        case mount
            contains -- $argv[2] --mount-mode --verify-key --policy --username --password --jobs -j --store
            return
        case umount unmount
            contains -- $argv[2] --store
            return
        case ls
            contains -- $argv[2] --store
            return
        case inspect
            contains -- $argv[2] --username --password
            return
        case sign
            contains -- $argv[2] --key --username --password
            return
        case images
            contains -- $argv[2] --store
            return
        case rmi
            contains -- $argv[2] --store
            return
        case gc
            contains -- $argv[2] --store
            return
        case verify
            contains -- $argv[2] --username --password --jobs -j --store
            return
        case login
            contains -- $argv[2] --username -u
            return
    end
    return 1
end

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
