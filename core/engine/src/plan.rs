//! How an artifact is mounted, decided from its manifest alone: an EROFS image and its devices,
//! SquashFS shards, or a model artifact mapped by a locally built metadata image. Apart from
//! [`crate::artifact`] (the format's names and the manifest parser) because a model plan comes
//! from [`crate::modelpack`], which itself reads the format's names.

use crate::artifact::*;
use crate::error::{EngineError, Result};

/// How to mount an artifact, derived from its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountPlan {
    /// An EROFS image with optional extra devices (data blobs) in device order.
    Erofs {
        /// The primary (metadata) image.
        primary: Box<Descriptor>,
        /// Extra devices, device id = index + 1.
        devices: Vec<Descriptor>,
    },
    /// SquashFS images stacked with overlayfs, lowest first (one image: mounted directly).
    Squashfs {
        /// Shards, lowest first.
        shards: Vec<Descriptor>,
    },
    /// A model artifact (ModelPack, KitOps, Docker Model Runner) whose layers are its files;
    /// mounted through a metadata image built locally ([`crate::modelpack`]).
    Model(crate::modelpack::ModelPlan),
}

impl MountPlan {
    /// Decides how to mount `m`; unknown or mixed layer types are refused with a clear error.
    pub fn from_manifest(m: &Manifest, what: &str) -> Result<MountPlan> {
        if let Some(flavor) = crate::modelpack::detect(m) {
            return Ok(MountPlan::Model(crate::modelpack::plan(m, flavor, what)?));
        }
        fn role(d: &Descriptor) -> Option<&str> {
            d.annotations.get(ANN_EROFS_ROLE).map(String::as_str)
        }
        let erofs: Vec<&Descriptor> = m
            .layers
            .iter()
            .filter(|d| {
                MOUNTABLE_EROFS.contains(&d.media_type.as_str()) && role(d) != Some("device")
            })
            .collect();
        let devices: Vec<&Descriptor> = m
            .layers
            .iter()
            .filter(|d| role(d) == Some("device"))
            .collect();
        let squash: Vec<&Descriptor> = m
            .layers
            .iter()
            .filter(|d| is_squashfs_media_type(&d.media_type))
            .collect();
        if let Some(d) = m.layers.iter().find(|d| {
            !(MOUNTABLE_EROFS.contains(&d.media_type.as_str())
                || role(d) == Some("device")
                || is_squashfs_media_type(&d.media_type))
        }) {
            return Err(EngineError::Usage(format!(
                "{what}: layer {} has media type {:?}, which fspack cannot mount (it mounts EROFS and SquashFS layers)",
                d.digest, d.media_type
            )));
        }
        if m.layers.is_empty() {
            return Err(EngineError::Usage(format!("{what} has no layers to mount")));
        }
        if !squash.is_empty() {
            if !erofs.is_empty() || !devices.is_empty() {
                return Err(EngineError::Usage(format!(
                    "{what} mixes SquashFS and EROFS layers"
                )));
            }
            let max = fspack_image::squashfs::MAX_SHARDS;
            if squash.len() > max {
                return Err(EngineError::Usage(format!(
                    "{what} has {} SquashFS shards, more than overlayfs can stack ({max} lower layers), so it cannot be mounted\nhint: publish it again with --shards {max} or fewer",
                    squash.len()
                )));
            }
            return Ok(MountPlan::Squashfs {
                shards: squash.into_iter().cloned().collect(),
            });
        }
        match erofs.as_slice() {
            [primary] if m.layers.last() == Some(*primary) => Ok(MountPlan::Erofs {
                primary: Box::new((*primary).clone()),
                devices: devices.into_iter().cloned().collect(),
            }),
            [_] => Err(EngineError::Usage(format!(
                "{what}: the EROFS metadata layer must come after its device layers"
            ))),
            _ => Err(EngineError::Usage(format!(
                "{what} has {} EROFS image layers; fspack mounts exactly one (plus device layers)",
                erofs.len()
            ))),
        }
    }

    /// All blobs the mount needs, in layer order.
    pub fn blobs(&self) -> Vec<&Descriptor> {
        match self {
            MountPlan::Erofs { primary, devices } => {
                devices.iter().chain(std::iter::once(&**primary)).collect()
            }
            MountPlan::Squashfs { shards } => shards.iter().collect(),
            MountPlan::Model(p) => p.layers.iter().map(|l| &l.desc).collect(),
        }
    }

    /// `erofs`, `squashfs`, or the model format (`modelpack`, `kitops`, `docker-model`).
    pub fn format(&self) -> &'static str {
        match self {
            MountPlan::Erofs { .. } => "erofs",
            MountPlan::Squashfs { .. } => "squashfs",
            MountPlan::Model(p) => p.flavor.name(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::test_support::{layer, manifest};

    #[test]
    fn chunked_erofs_plan_keeps_device_order() {
        let m = manifest(vec![
            layer(MEDIA_DEVICE, Some("device"), 1),
            layer(MEDIA_DEVICE, Some("device"), 2),
            layer(MEDIA_EROFS, None, 3),
        ]);
        let MountPlan::Erofs { primary, devices } = MountPlan::from_manifest(&m, "t").unwrap()
        else {
            panic!()
        };
        assert_eq!(primary.digest, layer(MEDIA_EROFS, None, 3).digest);
        assert_eq!(devices.len(), 2);
        assert_eq!(devices[0].digest, layer(MEDIA_DEVICE, None, 1).digest);
    }

    #[test]
    fn foreign_single_layer_types_are_mountable() {
        for mt in [
            "application/vnd.erofs.layer.v1",
            "application/vnd.oci.image.layer.v1.erofs",
        ] {
            assert!(matches!(
                MountPlan::from_manifest(&manifest(vec![layer(mt, None, 1)]), "t"),
                Ok(MountPlan::Erofs { .. })
            ));
        }
        let sq = manifest(vec![layer(
            "application/vnd.stacker.image.layer.squashfs+zstd",
            None,
            1,
        )]);
        assert!(matches!(
            MountPlan::from_manifest(&sq, "t"),
            Ok(MountPlan::Squashfs { .. })
        ));
    }

    #[test]
    fn unknown_media_types_are_refused_by_name() {
        let m = manifest(vec![layer(
            "application/vnd.oci.image.layer.v1.tar+gzip",
            None,
            1,
        )]);
        let err = MountPlan::from_manifest(&m, "reg/x:1")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tar+gzip") && err.contains("cannot mount"),
            "{err}"
        );
    }
}
