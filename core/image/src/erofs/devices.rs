//! Binds each data device of a chunked EROFS image to the image (issue 13).
//!
//! The kernel addresses extra devices by position only: handed the metadata image of one build
//! and the data blobs of another, it mounts them and serves wrong file contents without an error.
//! So every device slot's `tag` (64 bytes, `struct erofs_deviceslot` in the kernel's
//! `fs/erofs/erofs_fs.h`) holds the 64 lowercase hex digits of that blob's sha256, the same
//! digest the blob has as an OCI layer, and fspack checks the pair before every mount
//! ([`check_devices`]). The kernel only reads a tag as a path when a device is not given by
//! `device=`, which fspack always does. Images from before this change have empty tags; they are
//! accepted with a warning, since there is nothing to compare.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::ErofsImage;
use super::format::*;
use crate::error::{Error, Result};

/// Bytes of the `tag` field at the start of each device slot.
pub const TAG_LEN: usize = 64;

/// Byte offset of the checksum in the superblock.
const SB_CHECKSUM: usize = 4;

/// The tag that names a blob: the 64 hex digits of its `sha256:` digest.
///
/// Errors with [`Error::InvalidOption`] for anything that is not `sha256:` and 64 lowercase hex
/// digits.
pub fn tag_of_digest(digest: &str) -> Result<[u8; TAG_LEN]> {
    let hex = fspack_digest::sha256_hex(digest)
        .ok()
        .filter(|h| h.len() == TAG_LEN)
        .ok_or_else(|| {
            Error::InvalidOption(format!(
                "device identity {digest:?} is not sha256:<64 lowercase hex digits>"
            ))
        })?;
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(hex.as_bytes());
    Ok(tag)
}

impl ErofsImage {
    /// Writes each data blob's identity into its device slot and recomputes the superblock
    /// checksum. `digests` are the blobs' `sha256:` digests in device order (one per blob of
    /// [`ErofsImage::blobs`]).
    ///
    /// Errors with [`Error::InvalidOption`] when the count differs or a digest is malformed.
    pub fn bind_devices(&mut self, digests: &[impl AsRef<str>]) -> Result<()> {
        if digests.len() != self.blobs.len() {
            return Err(Error::InvalidOption(format!(
                "{} device digests for {} data blobs",
                digests.len(),
                self.blobs.len()
            )));
        }
        if digests.is_empty() {
            return Ok(());
        }
        let mut block0 = vec![0u8; BLKSZ as usize];
        self.meta
            .reader()
            .read_exact(&mut block0)
            .map_err(|e| Error::Format(format!("cannot read back block 0 of the plan: {e}")))?;
        let sb = &block0[SUPER_OFFSET..SUPER_OFFSET + 128];
        let slotoff = get16(sb, 88) as usize * DEVT_SLOT_SIZE;
        for (i, d) in digests.iter().enumerate() {
            let tag = tag_of_digest(d.as_ref())?;
            let at = slotoff + i * DEVT_SLOT_SIZE;
            if !self.meta.patch(at as u64, &tag) {
                return Err(Error::Format(format!(
                    "device slot {} at byte {at} is not generated metadata",
                    i + 1
                )));
            }
            if let Some(b) = block0.get_mut(at..at + TAG_LEN) {
                b.copy_from_slice(&tag);
            }
        }
        // The checksum covers block 0 from the superblock on; device slots past block 0 are not
        // covered (the kernel's own rule), and no file data lives in block 0 (see `plan`).
        put32(&mut block0, SUPER_OFFSET + SB_CHECKSUM, 0);
        let crc = superblock_checksum(&block0[SUPER_OFFSET..]);
        let patched = self
            .meta
            .patch((SUPER_OFFSET + SB_CHECKSUM) as u64, &crc.to_le_bytes());
        debug_assert!(patched, "the superblock is generated metadata");
        Ok(())
    }
}

/// The identities recorded in a primary image's device table, in device order; `None` for a
/// device whose tag is empty (an image from before issue 13).
///
/// Errors with [`Error::Format`] when `primary` is not an EROFS image or its device table lies
/// beyond the file, and [`Error::Io`] when it cannot be read.
pub fn device_tags(primary: &Path) -> Result<Vec<Option<String>>> {
    use std::os::unix::fs::FileExt;
    let f = File::open(primary).map_err(|e| Error::io(primary, e))?;
    let bad = |what: String| Error::Format(format!("{}: {what}", primary.display()));
    let mut sb = [0u8; 128];
    f.read_exact_at(&mut sb, SUPER_OFFSET as u64)
        .map_err(|_| bad("too short for an EROFS superblock".into()))?;
    if get32(&sb, 0) != MAGIC {
        return Err(bad("no EROFS magic at byte 1024".into()));
    }
    let n = get16(&sb, 86) as usize;
    if n == 0 {
        return Ok(Vec::new());
    }
    let slotoff = get16(&sb, 88) as u64 * DEVT_SLOT_SIZE as u64;
    // At most 65535 slots of 128 bytes: 8 MiB, bounded by the u16 count.
    let mut table = vec![0u8; n * DEVT_SLOT_SIZE];
    f.read_exact_at(&mut table, slotoff).map_err(|_| {
        bad(format!(
            "device table of {n} slots at byte {slotoff} is cut short"
        ))
    })?;
    Ok(table
        .chunks_exact(DEVT_SLOT_SIZE)
        .map(|slot| {
            let tag = &slot[..TAG_LEN];
            let len = tag.iter().position(|&b| b == 0).unwrap_or(TAG_LEN);
            (len > 0).then(|| String::from_utf8_lossy(&tag[..len]).into_owned())
        })
        .collect())
}

/// fspack's pre-mount check: the primary image at `image` must declare exactly as many devices
/// as `devices` holds, and each device's `sha256:` digest (given beside its path, known from the
/// store or from hashing) must equal the tag in its slot. The kernel never checks this.
///
/// Errors with [`Error::DeviceMismatch`] (naming the device and both identities) for a
/// mismatched pair, [`Error::Format`] for a device count that differs or an unreadable table.
pub fn check_devices<D: AsRef<str>>(image: &Path, devices: &[(PathBuf, D)]) -> Result<()> {
    let tags = device_tags(image)?;
    if tags.len() != devices.len() {
        return Err(Error::Format(format!(
            "{} declares {} data devices, but {} were given",
            image.display(),
            tags.len(),
            devices.len()
        )));
    }
    if !tags.is_empty() && tags.iter().all(Option::is_none) {
        tracing::warn!(
            image = %image.display(),
            "the image has no device tags (built before fspack bound devices to images); its data devices cannot be checked"
        );
        return Ok(());
    }
    for (i, (tag, (path, digest))) in tags.iter().zip(devices).enumerate() {
        let digest = digest.as_ref();
        let want = String::from_utf8_lossy(&tag_of_digest(digest)?).into_owned();
        if tag.as_deref() == Some(want.as_str()) {
            continue;
        }
        let expected = match tag {
            Some(t) if tag_of_digest(&format!("sha256:{t}")).is_ok() => format!("sha256:{t}"),
            Some(t) => format!("{t:?}"),
            None => "an empty tag".into(),
        };
        return Err(Error::DeviceMismatch {
            image: image.to_path_buf(),
            device_id: (i + 1) as u16,
            device: path.clone(),
            expected,
            actual: digest.to_string(),
        });
    }
    Ok(())
}
