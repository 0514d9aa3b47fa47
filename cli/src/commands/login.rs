//! `fspack login` and `logout`: credentials in the Docker config file other tools read too.

use std::io::Read;

use anyhow::Context;

use crate::args::{LoginArgs, LogoutArgs};

pub async fn login(args: LoginArgs) -> anyhow::Result<()> {
    // A URL pasted as the registry became "https://http//…" (s10 fresh-eyes pass).
    if let Some(scheme) = fspack_engine::url_scheme(&args.registry) {
        crate::exit::usage!(
            "{}: name the registry without a scheme (drop {scheme}); loopback registries are spoken to over plain HTTP by themselves",
            args.registry
        );
    }
    if !args.password_stdin {
        crate::exit::usage!(
            "pass the password on standard input with --password-stdin (it never goes on the command line)"
        );
    }
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("cannot read the password from standard input")?;
    let password = password.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        crate::exit::usage!("the password read from standard input is empty");
    }
    // Checked first, as docker login does: wrong credentials or a registry that is not there
    // must not end up stored and fail the next push instead.
    let client = super::client_with(fspack_engine::ClientOptions {
        username: Some(args.username.clone()),
        password: Some(password.to_string()),
        user_agent: format!("fspack/{}", env!("CARGO_PKG_VERSION")),
        ..Default::default()
    })?;
    if let Err(e) = fspack_engine::login::check(&client, &args.registry).await {
        // "Did not accept" only when it answered: a registry that cannot be reached said nothing.
        let what = if e.kind()
            == fspack_engine::ErrorKind::Registry(fspack_engine::error::kinds::Registry::Network)
        {
            format!("cannot reach {}; nothing was stored", args.registry)
        } else {
            format!(
                "{} did not accept the credentials of {}; nothing was stored",
                args.registry, args.username
            )
        };
        return Err(anyhow::Error::from(e).context(what));
    }
    let stored = fspack_engine::login::login(&args.registry, &args.username, password)
        .with_context(|| format!("cannot store credentials for {}", args.registry))?;
    match stored {
        fspack_engine::login::Stored::File(file) => eprintln!(
            "credentials for {} stored in {}",
            args.registry,
            file.display()
        ),
        fspack_engine::login::Stored::Helper { helper, file } => eprintln!(
            "credentials for {} stored in docker-credential-{helper} (configured in {})",
            args.registry,
            file.display()
        ),
    }
    Ok(())
}

pub fn logout(args: LogoutArgs) -> anyhow::Result<()> {
    let removed = fspack_engine::login::logout(&args.registry)
        .with_context(|| format!("cannot remove credentials for {}", args.registry))?;
    if removed {
        eprintln!("removed credentials for {}", args.registry);
    } else {
        eprintln!("no credentials for {} were stored", args.registry);
    }
    Ok(())
}
