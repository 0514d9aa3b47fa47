//! Tests of model-pack detection (each tool by its published types) and layer naming, kept
//! apart so the rules read alone.

use super::*;
use crate::artifact::{MEDIA_MANIFEST, descriptor};

fn manifest(config: &str, artifact: Option<&str>, layers: Vec<Descriptor>) -> Manifest {
    Manifest {
        schema_version: 2,
        media_type: Some(MEDIA_MANIFEST.into()),
        artifact_type: artifact.map(String::from),
        config: descriptor(
            config,
            &fspack_digest::Digest::sha256_from_hex(&"0".repeat(64)).unwrap(),
            2,
            BTreeMap::new(),
        ),
        layers,
        subject: None,
        annotations: BTreeMap::new(),
    }
}

fn layer(mt: &str, path: Option<&str>, n: u8) -> Descriptor {
    let ann = path
        .map(|p| BTreeMap::from([(ANN_FILEPATH.to_string(), p.to_string())]))
        .unwrap_or_default();
    descriptor(mt, &fspack_digest::Digest::from_sha256([n; 32]), 10, ann)
}

#[test]
fn each_tool_is_detected_by_its_published_types() {
    let kit = manifest(MEDIA_KITOPS_CONFIG, None, vec![]);
    assert_eq!(detect(&kit), Some(Flavor::KitOps));
    let dmr = manifest(
        "application/vnd.docker.ai.model.config.v0.2+json",
        None,
        vec![],
    );
    assert_eq!(detect(&dmr), Some(Flavor::DockerModel));
    let mp = manifest("application/x-other", Some(ARTIFACT_MODELPACK), vec![]);
    assert_eq!(detect(&mp), Some(Flavor::ModelPack));
    assert_eq!(
        detect(&manifest("application/vnd.oci.empty.v1+json", None, vec![])),
        None
    );
    for (f, mt, p) in [
        (
            Flavor::ModelPack,
            "application/vnd.cncf.model.weight.v1.raw",
            Some(Packing::Raw),
        ),
        (
            Flavor::ModelPack,
            "application/vnd.cncf.model.doc.v1.tar+zstd",
            Some(Packing::TarZstd),
        ),
        (
            Flavor::ModelPack,
            "application/vnd.cncf.model.weight.v1.gguf",
            Some(Packing::Raw),
        ),
        (
            Flavor::ModelPack,
            "application/vnd.oci.image.layer.v1.tar",
            None,
        ),
        (
            Flavor::KitOps,
            "application/vnd.kitops.modelkit.model.v1.tar",
            Some(Packing::Tar),
        ),
        (
            Flavor::KitOps,
            "application/vnd.kitops.modelkit.prompt.v1.tar+gzip",
            Some(Packing::TarGzip),
        ),
        (
            Flavor::DockerModel,
            "application/vnd.docker.ai.gguf.v3",
            Some(Packing::Raw),
        ),
        (
            Flavor::DockerModel,
            "application/vnd.docker.ai.dir.tar",
            Some(Packing::Tar),
        ),
        (
            Flavor::DockerModel,
            "application/vnd.docker.ai.unknown",
            None,
        ),
    ] {
        assert_eq!(packing(f, mt), p, "{mt}");
    }
}

#[test]
fn legacy_docker_model_layers_get_names_and_modelpack_raw_layers_need_paths() {
    let dmr = manifest(
        "application/vnd.docker.ai.model.config.v0.1+json",
        None,
        vec![layer("application/vnd.docker.ai.gguf.v3", None, 1)],
    );
    let p = plan(&dmr, Flavor::DockerModel, "t").unwrap();
    assert_eq!(p.layers[0].path.as_deref(), Some("010101010101.gguf"));
    let mp = manifest(
        MEDIA_MODELPACK_CONFIG,
        Some(ARTIFACT_MODELPACK),
        vec![layer("application/vnd.cncf.model.weight.v1.raw", None, 1)],
    );
    let err = plan(&mp, Flavor::ModelPack, "t").unwrap_err();
    assert!(matches!(err, EngineError::Refused { .. }), "{err}");
}
