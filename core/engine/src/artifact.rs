//! The artifact format fspack pushes and pulls: media types, annotations and layer order.
//! `docs/format.md` is the prose version of this module.

/// `artifactType` of fspack manifests.
pub const ARTIFACT_TYPE: &str = "application/vnd.fspack.image.v1";
/// Media type of the empty config blob (image-spec "Guidelines for Artifact Usage").
pub const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";
/// The empty config's content.
pub const EMPTY_CONFIG_DATA: &[u8] = b"{}";
/// A complete, mountable EROFS image (IANA-registered; erofs-image-spec draft).
pub const MEDIA_EROFS: &str = "application/vnd.erofs";
/// Data blob of a chunked EROFS image, attached as an extra device (`org.erofs.role: device`).
pub const MEDIA_DEVICE: &str = "application/octet-stream";
/// SquashFS layer prefix (the type stacker/atomfs deploy), suffixed with the compressor.
pub const MEDIA_SQUASHFS_PREFIX: &str = "application/vnd.stacker.image.layer.squashfs";
/// Annotation: file name of a layer.
pub const ANN_TITLE: &str = "org.opencontainers.image.title";
/// Annotation: role of an EROFS layer (erofs-image-spec draft).
pub const ANN_EROFS_ROLE: &str = "org.erofs.role";
/// Annotation: fspack image format (`erofs` or `squashfs`).
pub const ANN_FORMAT: &str = "io.fspack.format";
/// Annotation: fspack layout (`single`, `chunked`, `sharded`).
pub const ANN_LAYOUT: &str = "io.fspack.layout";

/// Layer media types fspack can mount: EROFS images from any tool and SquashFS layers.
pub const MOUNTABLE_EROFS: &[&str] = &[
    MEDIA_EROFS,
    "application/vnd.erofs.layer.v1",
    "application/vnd.oci.image.layer.v1.erofs",
    "application/vnd.oci.image.layer.erofs",
];

/// Whether `media_type` names a SquashFS layer (stacker, legacy OCI or fspack spellings).
pub fn is_squashfs_media_type(media_type: &str) -> bool {
    media_type.starts_with(MEDIA_SQUASHFS_PREFIX)
        || media_type.starts_with("application/vnd.oci.image.layer.squashfs")
        || media_type.starts_with("application/vnd.oci.image.layer.v1.squashfs")
}
