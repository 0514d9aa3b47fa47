
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'fspack' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'fspack'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'fspack' {
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Local store (an OCI image layout) for pulled images [default: $FSPACK_STORE, else /var/lib/fspack as root, $XDG_DATA_HOME/fspack otherwise]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print less: no progress bars, only errors and requested data')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print less: no progress bars, only errors and requested data')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('build', 'build', [CompletionResultType]::ParameterValue, 'Build an EROFS or SquashFS image from a directory')
            [CompletionResult]::new('push', 'push', [CompletionResultType]::ParameterValue, 'Push a directory or an image file to a registry (or an OCI layout) as an artifact')
            [CompletionResult]::new('pull', 'pull', [CompletionResultType]::ParameterValue, 'Download an artifact into the local store, verifying every blob, and optionally mount it')
            [CompletionResult]::new('mount', 'mount', [CompletionResultType]::ParameterValue, 'Mount an artifact from the local store (pulling it first if needed)')
            [CompletionResult]::new('umount', 'umount', [CompletionResultType]::ParameterValue, 'Unmount a directory mounted by fspack and release its loop devices')
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List what fspack has mounted: reference, manifest digest, format, devices')
            [CompletionResult]::new('inspect', 'inspect', [CompletionResultType]::ParameterValue, 'Show an artifact''s manifest, layers, sizes and format without downloading its data')
            [CompletionResult]::new('sign', 'sign', [CompletionResultType]::ParameterValue, 'Sign an artifact''s manifest digest with an ECDSA P-256 key, the way `cosign sign --key` does (signature under the `sha256-<hex>.sig` tag)')
            [CompletionResult]::new('images', 'images', [CompletionResultType]::ParameterValue, 'List the images in the local store: reference, digest, format, size, where mounted')
            [CompletionResult]::new('rmi', 'rmi', [CompletionResultType]::ParameterValue, 'Remove images (tags) from the local store; `gc` then frees the blobs nothing else uses')
            [CompletionResult]::new('gc', 'gc', [CompletionResultType]::ParameterValue, 'Remove blobs from the local store that no tag and no mount uses')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Re-hash stored blobs and name every bad blob, bad chunk and the mounts that use them')
            [CompletionResult]::new('login', 'login', [CompletionResultType]::ParameterValue, 'Check registry credentials with the registry, then store them in the Docker config file')
            [CompletionResult]::new('logout', 'logout', [CompletionResultType]::ParameterValue, 'Remove stored registry credentials')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'fspack;build' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output image file (chunked EROFS also writes data blobs to OUT.d/; SquashFS shards go to OUT.d/)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output image file (chunked EROFS also writes data blobs to OUT.d/; SquashFS shards go to OUT.d/)')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'EROFS layout [default: single]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Image format [default: erofs]')
            [CompletionResult]::new('--erofs-chunk-size', '--erofs-chunk-size', [CompletionResultType]::ParameterName, 'Chunk size of large files in the chunked EROFS layout (power of two, at least 4K) [default: 1M]')
            [CompletionResult]::new('--blob-size', '--blob-size', [CompletionResultType]::ParameterName, 'Largest data blob of the chunked EROFS layout, and the pack size of SquashFS shards (files of a quarter of it get blobs or shards of their own); more blobs, more parallelism. At least one EROFS chunk (--erofs-chunk-size). It bounds the data: each pushed blob also carries its chunk index (32 bytes + 48 per MiB), a few KiB more. [default: about 1/16 of the data, a power of two from 16M to 256M]')
            [CompletionResult]::new('--compression', '--compression', [CompletionResultType]::ParameterName, 'SquashFS compressor [default: zstd]')
            [CompletionResult]::new('--level', '--level', [CompletionResultType]::ParameterName, 'SquashFS compression level (compressor default when omitted)')
            [CompletionResult]::new('--block-size', '--block-size', [CompletionResultType]::ParameterName, 'SquashFS block size (power of two from 4K to 1M) [default: 128K]')
            [CompletionResult]::new('--shards', '--shards', [CompletionResultType]::ParameterName, 'SquashFS: split the tree into N disjoint images stacked with overlayfs; "auto" gives large files shards of their own [default: 1 for build, auto for push]')
            [CompletionResult]::new('--mtime', '--mtime', [CompletionResultType]::ParameterName, 'Record this modification time (seconds since the epoch) on every file')
            [CompletionResult]::new('--all-root', '--all-root', [CompletionResultType]::ParameterName, 'Record every file as owned by root (uid 0, gid 0)')
            [CompletionResult]::new('--one-file-system', '--one-file-system', [CompletionResultType]::ParameterName, 'Stay on the source directory''s filesystem: a directory another filesystem is mounted on is stored empty, and a file mounted over (a bind mount) is left out, as with `mksquashfs -one-file-system`')
            [CompletionResult]::new('--strict-acls', '--strict-acls', [CompletionResultType]::ParameterName, 'SquashFS: fail on POSIX ACLs (system.posix_acl_*), which the format cannot store, instead of dropping them with a warning (EROFS keeps them)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the result as JSON on stdout (messages stay on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print less: no progress bars, only errors and requested data')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print less: no progress bars, only errors and requested data')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'fspack;push' {
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Image format [default: erofs]')
            [CompletionResult]::new('--erofs-chunk-size', '--erofs-chunk-size', [CompletionResultType]::ParameterName, 'Chunk size of large files in the chunked EROFS layout (power of two, at least 4K) [default: 1M]')
            [CompletionResult]::new('--blob-size', '--blob-size', [CompletionResultType]::ParameterName, 'Largest data blob of the chunked EROFS layout, and the pack size of SquashFS shards (files of a quarter of it get blobs or shards of their own); more blobs, more parallelism. At least one EROFS chunk (--erofs-chunk-size). It bounds the data: each pushed blob also carries its chunk index (32 bytes + 48 per MiB), a few KiB more. [default: about 1/16 of the data, a power of two from 16M to 256M]')
            [CompletionResult]::new('--compression', '--compression', [CompletionResultType]::ParameterName, 'SquashFS compressor [default: zstd]')
            [CompletionResult]::new('--level', '--level', [CompletionResultType]::ParameterName, 'SquashFS compression level (compressor default when omitted)')
            [CompletionResult]::new('--block-size', '--block-size', [CompletionResultType]::ParameterName, 'SquashFS block size (power of two from 4K to 1M) [default: 128K]')
            [CompletionResult]::new('--shards', '--shards', [CompletionResultType]::ParameterName, 'SquashFS: split the tree into N disjoint images stacked with overlayfs; "auto" gives large files shards of their own [default: 1 for build, auto for push]')
            [CompletionResult]::new('--mtime', '--mtime', [CompletionResultType]::ParameterName, 'Record this modification time (seconds since the epoch) on every file')
            [CompletionResult]::new('--chunk-size', '--chunk-size', [CompletionResultType]::ParameterName, 'Upload each blob in PATCH chunks of this size instead of one streamed PUT (for proxies that cap request bodies)')
            [CompletionResult]::new('--sign-key', '--sign-key', [CompletionResultType]::ParameterName, 'Sign the pushed manifest with this ECDSA P-256 private key (PKCS#8 PEM), as `fspack sign` does')
            [CompletionResult]::new('--annotation', '--annotation', [CompletionResultType]::ParameterName, 'Manifest annotation (repeatable)')
            [CompletionResult]::new('--username', '--username', [CompletionResultType]::ParameterName, 'Registry user name (else credentials come from the Docker config)')
            [CompletionResult]::new('--password', '--password', [CompletionResultType]::ParameterName, 'Registry password or token (prefer FSPACK_PASSWORD or `fspack login`)')
            [CompletionResult]::new('-j', '-j', [CompletionResultType]::ParameterName, 'Parallel transfers: blobs at once, and HTTP Range requests within one large blob')
            [CompletionResult]::new('--jobs', '--jobs', [CompletionResultType]::ParameterName, 'Parallel transfers: blobs at once, and HTTP Range requests within one large blob')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Local store (an OCI image layout) for pulled images [default: $FSPACK_STORE, else /var/lib/fspack as root, $XDG_DATA_HOME/fspack otherwise]')
            [CompletionResult]::new('--all-root', '--all-root', [CompletionResultType]::ParameterName, 'Record every file as owned by root (uid 0, gid 0)')
            [CompletionResult]::new('--one-file-system', '--one-file-system', [CompletionResultType]::ParameterName, 'Stay on the source directory''s filesystem: a directory another filesystem is mounted on is stored empty, and a file mounted over (a bind mount) is left out, as with `mksquashfs -one-file-system`')
            [CompletionResult]::new('--strict-acls', '--strict-acls', [CompletionResultType]::ParameterName, 'SquashFS: fail on POSIX ACLs (system.posix_acl_*), which the format cannot store, instead of dropping them with a warning (EROFS keeps them)')
            [CompletionResult]::new('--modelpack', '--modelpack', [CompletionResultType]::ParameterName, 'Push the directory as a CNCF ModelPack artifact: one raw layer per file, media type by the file''s role, readable by modctl and mounted by fspack with no second copy. Builds no image, so the format options do not apply')
            [CompletionResult]::new('--plain-http', '--plain-http', [CompletionResultType]::ParameterName, 'Allow plain HTTP to the registry (loopback registries use it automatically)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (dangerous)')
            [CompletionResult]::new('--plain-http-credentials', '--plain-http-credentials', [CompletionResultType]::ParameterName, 'Allow credentials to go over plain HTTP to a host that is not loopback (anyone on the network path can read them; a warning is printed)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the result as JSON on stdout (messages stay on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print less: no progress bars, only errors and requested data')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print less: no progress bars, only errors and requested data')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'fspack;pull' {
            [CompletionResult]::new('--mount', '--mount', [CompletionResultType]::ParameterName, 'Mount the image on this directory once pulled (checked first; created when missing, and removed again by `fspack umount`)')
            [CompletionResult]::new('--mount-mode', '--mount-mode', [CompletionResultType]::ParameterName, 'How EROFS images are attached (SquashFS always uses loop devices, and refuses `file`)')
            [CompletionResult]::new('--verify-key', '--verify-key', [CompletionResultType]::ParameterName, 'Require a cosign signature of the manifest digest by this public key (PEM; repeatable: every key must have signed), in addition to the policy')
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Policy file (containers-policy.json shape) [default: /etc/fspack/policy.json when it exists]')
            [CompletionResult]::new('--username', '--username', [CompletionResultType]::ParameterName, 'Registry user name (else credentials come from the Docker config)')
            [CompletionResult]::new('--password', '--password', [CompletionResultType]::ParameterName, 'Registry password or token (prefer FSPACK_PASSWORD or `fspack login`)')
            [CompletionResult]::new('-j', '-j', [CompletionResultType]::ParameterName, 'Parallel transfers: blobs at once, and HTTP Range requests within one large blob')
            [CompletionResult]::new('--jobs', '--jobs', [CompletionResultType]::ParameterName, 'Parallel transfers: blobs at once, and HTTP Range requests within one large blob')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Local store (an OCI image layout) for pulled images [default: $FSPACK_STORE, else /var/lib/fspack as root, $XDG_DATA_HOME/fspack otherwise]')
            [CompletionResult]::new('--lazy', '--lazy', [CompletionResultType]::ParameterName, 'Mount as soon as the metadata is verified and fetch data chunks on first read, each verified against the layer''s chunk index (model layers without one: once verified whole); the rest is fetched in the background, and the mount ends as a plain mount of the store (needs --mount)')
            [CompletionResult]::new('--noexec', '--noexec', [CompletionResultType]::ParameterName, 'Forbid executing files from the mount')
            [CompletionResult]::new('--plain-http', '--plain-http', [CompletionResultType]::ParameterName, 'Allow plain HTTP to the registry (loopback registries use it automatically)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (dangerous)')
            [CompletionResult]::new('--plain-http-credentials', '--plain-http-credentials', [CompletionResultType]::ParameterName, 'Allow credentials to go over plain HTTP to a host that is not loopback (anyone on the network path can read them; a warning is printed)')
            [CompletionResult]::new('--verify', '--verify', [CompletionResultType]::ParameterName, 'Also re-hash the blobs the store already had for this reference, and fetch again only the chunks that fail (as `fspack verify REF --repair`)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the result as JSON on stdout (messages stay on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print less: no progress bars, only errors and requested data')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print less: no progress bars, only errors and requested data')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'fspack;mount' {
            [CompletionResult]::new('--mount-mode', '--mount-mode', [CompletionResultType]::ParameterName, 'How EROFS images are attached (SquashFS always uses loop devices, and refuses `file`)')
            [CompletionResult]::new('--verify-key', '--verify-key', [CompletionResultType]::ParameterName, 'Require a cosign signature of the manifest digest by this public key (PEM; repeatable: every key must have signed), in addition to the policy')
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Policy file (containers-policy.json shape) [default: /etc/fspack/policy.json when it exists]')
            [CompletionResult]::new('--username', '--username', [CompletionResultType]::ParameterName, 'Registry user name (else credentials come from the Docker config)')
            [CompletionResult]::new('--password', '--password', [CompletionResultType]::ParameterName, 'Registry password or token (prefer FSPACK_PASSWORD or `fspack login`)')
            [CompletionResult]::new('-j', '-j', [CompletionResultType]::ParameterName, 'Parallel transfers: blobs at once, and HTTP Range requests within one large blob')
            [CompletionResult]::new('--jobs', '--jobs', [CompletionResultType]::ParameterName, 'Parallel transfers: blobs at once, and HTTP Range requests within one large blob')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Local store (an OCI image layout) for pulled images [default: $FSPACK_STORE, else /var/lib/fspack as root, $XDG_DATA_HOME/fspack otherwise]')
            [CompletionResult]::new('--lazy', '--lazy', [CompletionResultType]::ParameterName, 'When the artifact is not in the store: mount as soon as the metadata is verified and fetch data chunks on first read, each verified against the layer''s chunk index (model layers without one: once verified whole); the rest is fetched in the background, and the mount ends as a plain mount of the store')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the result as JSON on stdout (messages stay on stderr)')
            [CompletionResult]::new('--noexec', '--noexec', [CompletionResultType]::ParameterName, 'Forbid executing files from the mount')
            [CompletionResult]::new('--plain-http', '--plain-http', [CompletionResultType]::ParameterName, 'Allow plain HTTP to the registry (loopback registries use it automatically)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (dangerous)')
            [CompletionResult]::new('--plain-http-credentials', '--plain-http-credentials', [CompletionResultType]::ParameterName, 'Allow credentials to go over plain HTTP to a host that is not loopback (anyone on the network path can read them; a warning is printed)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print less: no progress bars, only errors and requested data')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print less: no progress bars, only errors and requested data')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'fspack;umount' {
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Local store (an OCI image layout) for pulled images [default: $FSPACK_STORE, else /var/lib/fspack as root, $XDG_DATA_HOME/fspack otherwise]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print less: no progress bars, only errors and requested data')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print less: no progress bars, only errors and requested data')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'fspack;ls' {
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Local store (an OCI image layout) for pulled images [default: $FSPACK_STORE, else /var/lib/fspack as root, $XDG_DATA_HOME/fspack otherwise]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the result as JSON on stdout (messages stay on stderr)')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'Wait until every lazy mount has all its data (a progress bar per mount when stderr is a terminal), then list; fails if a lazy server is gone (exit 3) or a chunk keeps failing verification (exit 6)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print less: no progress bars, only errors and requested data')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print less: no progress bars, only errors and requested data')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'fspack;inspect' {
            [CompletionResult]::new('--username', '--username', [CompletionResultType]::ParameterName, 'Registry user name (else credentials come from the Docker config)')
            [CompletionResult]::new('--password', '--password', [CompletionResultType]::ParameterName, 'Registry password or token (prefer FSPACK_PASSWORD or `fspack login`)')
            [CompletionResult]::new('--plain-http', '--plain-http', [CompletionResultType]::ParameterName, 'Allow plain HTTP to the registry (loopback registries use it automatically)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (dangerous)')
            [CompletionResult]::new('--plain-http-credentials', '--plain-http-credentials', [CompletionResultType]::ParameterName, 'Allow credentials to go over plain HTTP to a host that is not loopback (anyone on the network path can read them; a warning is printed)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the result as JSON on stdout (messages stay on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print less: no progress bars, only errors and requested data')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print less: no progress bars, only errors and requested data')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'fspack;sign' {
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'ECDSA P-256 private key, PKCS#8 PEM (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`)')
            [CompletionResult]::new('--username', '--username', [CompletionResultType]::ParameterName, 'Registry user name (else credentials come from the Docker config)')
            [CompletionResult]::new('--password', '--password', [CompletionResultType]::ParameterName, 'Registry password or token (prefer FSPACK_PASSWORD or `fspack login`)')
            [CompletionResult]::new('--plain-http', '--plain-http', [CompletionResultType]::ParameterName, 'Allow plain HTTP to the registry (loopback registries use it automatically)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (dangerous)')
            [CompletionResult]::new('--plain-http-credentials', '--plain-http-credentials', [CompletionResultType]::ParameterName, 'Allow credentials to go over plain HTTP to a host that is not loopback (anyone on the network path can read them; a warning is printed)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the result as JSON on stdout (messages stay on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print less: no progress bars, only errors and requested data')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print less: no progress bars, only errors and requested data')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'fspack;images' {
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Local store (an OCI image layout) for pulled images [default: $FSPACK_STORE, else /var/lib/fspack as root, $XDG_DATA_HOME/fspack otherwise]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the result as JSON on stdout (messages stay on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print less: no progress bars, only errors and requested data')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print less: no progress bars, only errors and requested data')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'fspack;rmi' {
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Local store (an OCI image layout) for pulled images [default: $FSPACK_STORE, else /var/lib/fspack as root, $XDG_DATA_HOME/fspack otherwise]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the result as JSON on stdout (messages stay on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print less: no progress bars, only errors and requested data')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print less: no progress bars, only errors and requested data')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'fspack;gc' {
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Local store (an OCI image layout) for pulled images [default: $FSPACK_STORE, else /var/lib/fspack as root, $XDG_DATA_HOME/fspack otherwise]')
            [CompletionResult]::new('--partial', '--partial', [CompletionResultType]::ParameterName, 'Also remove partial downloads now, whatever their age (they are otherwise kept for a day so that an interrupted pull or lazy mount resumes); ones in use are kept')
            [CompletionResult]::new('--no-wait', '--no-wait', [CompletionResultType]::ParameterName, 'Fail at once (exit 1) while another fspack process uses the store, instead of waiting for it (a lazy mount holds the store until its fill completes)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the result as JSON on stdout (messages stay on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print less: no progress bars, only errors and requested data')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print less: no progress bars, only errors and requested data')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'fspack;verify' {
            [CompletionResult]::new('--username', '--username', [CompletionResultType]::ParameterName, 'Registry user name (else credentials come from the Docker config)')
            [CompletionResult]::new('--password', '--password', [CompletionResultType]::ParameterName, 'Registry password or token (prefer FSPACK_PASSWORD or `fspack login`)')
            [CompletionResult]::new('-j', '-j', [CompletionResultType]::ParameterName, 'Parallel transfers: blobs at once, and HTTP Range requests within one large blob')
            [CompletionResult]::new('--jobs', '--jobs', [CompletionResultType]::ParameterName, 'Parallel transfers: blobs at once, and HTTP Range requests within one large blob')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Local store (an OCI image layout) for pulled images [default: $FSPACK_STORE, else /var/lib/fspack as root, $XDG_DATA_HOME/fspack otherwise]')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Check every blob in the store, and every blob a tag or a mount names')
            [CompletionResult]::new('--repair', '--repair', [CompletionResultType]::ParameterName, 'Fetch the bad chunks again (whole blobs where there is no chunk index), verify them and write them into the stored blob, so mounts using it read the right bytes; fetch a missing blob whole, as a pull does')
            [CompletionResult]::new('--plain-http', '--plain-http', [CompletionResultType]::ParameterName, 'Allow plain HTTP to the registry (loopback registries use it automatically)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (dangerous)')
            [CompletionResult]::new('--plain-http-credentials', '--plain-http-credentials', [CompletionResultType]::ParameterName, 'Allow credentials to go over plain HTTP to a host that is not loopback (anyone on the network path can read them; a warning is printed)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the result as JSON on stdout (messages stay on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print less: no progress bars, only errors and requested data')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print less: no progress bars, only errors and requested data')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'fspack;login' {
            [CompletionResult]::new('-u', '-u', [CompletionResultType]::ParameterName, 'User name')
            [CompletionResult]::new('--username', '--username', [CompletionResultType]::ParameterName, 'User name')
            [CompletionResult]::new('--password-stdin', '--password-stdin', [CompletionResultType]::ParameterName, 'Read the password from standard input (required: a password is never taken as an argument, where other users could read it)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print less: no progress bars, only errors and requested data')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print less: no progress bars, only errors and requested data')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'fspack;logout' {
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print less: no progress bars, only errors and requested data')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print less: no progress bars, only errors and requested data')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'fspack;completions' {
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print less: no progress bars, only errors and requested data')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print less: no progress bars, only errors and requested data')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more: -v for progress details, -vv for debug logs, -vvv also the HTTP stack''s (or set RUST_LOG)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'fspack;help' {
            [CompletionResult]::new('build', 'build', [CompletionResultType]::ParameterValue, 'Build an EROFS or SquashFS image from a directory')
            [CompletionResult]::new('push', 'push', [CompletionResultType]::ParameterValue, 'Push a directory or an image file to a registry (or an OCI layout) as an artifact')
            [CompletionResult]::new('pull', 'pull', [CompletionResultType]::ParameterValue, 'Download an artifact into the local store, verifying every blob, and optionally mount it')
            [CompletionResult]::new('mount', 'mount', [CompletionResultType]::ParameterValue, 'Mount an artifact from the local store (pulling it first if needed)')
            [CompletionResult]::new('umount', 'umount', [CompletionResultType]::ParameterValue, 'Unmount a directory mounted by fspack and release its loop devices')
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List what fspack has mounted: reference, manifest digest, format, devices')
            [CompletionResult]::new('inspect', 'inspect', [CompletionResultType]::ParameterValue, 'Show an artifact''s manifest, layers, sizes and format without downloading its data')
            [CompletionResult]::new('sign', 'sign', [CompletionResultType]::ParameterValue, 'Sign an artifact''s manifest digest with an ECDSA P-256 key, the way `cosign sign --key` does (signature under the `sha256-<hex>.sig` tag)')
            [CompletionResult]::new('images', 'images', [CompletionResultType]::ParameterValue, 'List the images in the local store: reference, digest, format, size, where mounted')
            [CompletionResult]::new('rmi', 'rmi', [CompletionResultType]::ParameterValue, 'Remove images (tags) from the local store; `gc` then frees the blobs nothing else uses')
            [CompletionResult]::new('gc', 'gc', [CompletionResultType]::ParameterValue, 'Remove blobs from the local store that no tag and no mount uses')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Re-hash stored blobs and name every bad blob, bad chunk and the mounts that use them')
            [CompletionResult]::new('login', 'login', [CompletionResultType]::ParameterValue, 'Check registry credentials with the registry, then store them in the Docker config file')
            [CompletionResult]::new('logout', 'logout', [CompletionResultType]::ParameterValue, 'Remove stored registry credentials')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'fspack;help;build' {
            break
        }
        'fspack;help;push' {
            break
        }
        'fspack;help;pull' {
            break
        }
        'fspack;help;mount' {
            break
        }
        'fspack;help;umount' {
            break
        }
        'fspack;help;ls' {
            break
        }
        'fspack;help;inspect' {
            break
        }
        'fspack;help;sign' {
            break
        }
        'fspack;help;images' {
            break
        }
        'fspack;help;rmi' {
            break
        }
        'fspack;help;gc' {
            break
        }
        'fspack;help;verify' {
            break
        }
        'fspack;help;login' {
            break
        }
        'fspack;help;logout' {
            break
        }
        'fspack;help;completions' {
            break
        }
        'fspack;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
