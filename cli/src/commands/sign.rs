//! `fspack sign REF --key KEY`: a cosign-compatible signature of the manifest REF names.

use anyhow::Context;
use fspack_engine::EngineError;
use fspack_engine::target::Target;
use fspack_engine::trust::SigningKey;

use crate::args::{GlobalArgs, SignArgs};

pub async fn run(args: SignArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let Target::Registry(r) = Target::parse(&args.reference)? else {
        return Err(EngineError::Usage(
            "sign writes to a registry; an oci: layout has nowhere to keep the signature".into(),
        )
        .into());
    };
    let key = SigningKey::from_pem_file(&args.key)
        .map_err(EngineError::from)
        .context("cannot use --key")?;
    let client = super::client(&args.registry)?;
    // A tag is resolved once, here; the signature then names that digest only.
    let digest = fspack_engine::sign::resolve_digest(&client, &r)
        .await
        .with_context(|| format!("cannot resolve {}", args.reference))?;
    let report = fspack_engine::sign::sign(&client, &r, &digest, &key)
        .await
        .with_context(|| format!("failed to sign {} ({digest})", args.reference))?;
    if args.json {
        super::print_json(&report)?;
    } else {
        if !g.quiet {
            let what = if report.added {
                "signed"
            } else {
                "already signed with this key:"
            };
            eprintln!(
                "{what} {} ({}) at {}",
                report.reference, report.manifest_digest, report.signature_ref
            );
        }
        println!("{}", report.manifest_digest);
    }
    Ok(())
}
