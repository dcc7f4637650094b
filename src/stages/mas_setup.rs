//! The config stage's part for homeservers that delegate authentication to
//! MAS: the credentials (`--mas-client-id` and `--mas-client-secret-file`,
//! or MAS's own config with `--mas-config`), MAS's address (`--mas-url`, the
//! config's `http.public_base`, or the issuer the homeserver names), the
//! password complexity MAS demands and the server name (MAS's config, else
//! its site config). The credentials
//! are tried once here, so a wrong secret ends the run before any row.

use crate::backend::mas::Setup;
use crate::console::Console;
use crate::error::Error;
use crate::homeserver::mas::{Credentials, Mas};
use crate::homeserver::{Homeserver, Transport};
use crate::options::Options;
use crate::secret::Secret;
use serde_yaml::Value;
use std::path::Path;
use std::sync::Arc;

/// MAS's default `passwords.minimum_complexity`.
pub const DEFAULT_COMPLEXITY: u8 = 3;

/// Whether the invocation asks for MAS at all.
pub fn wanted(opts: &Options) -> bool {
    opts.mas_client_id.is_some()
        || opts.mas_client_secret_file.is_some()
        || opts.mas_config.is_some()
        || opts.mas_url.is_some()
}

/// What MAS's own config gives.
#[derive(Debug, Default)]
struct MasConfig {
    public_base: Option<String>,
    client: Option<(String, Secret)>,
    minimum_complexity: Option<u8>,
    homeserver: Option<String>,
}

fn read_mas_config(path: &Path) -> Result<MasConfig, Error> {
    let bytes = crate::files::read_regular(path, 4 << 20).map_err(|e| {
        Error::Config(format!(
            "cannot read the MAS config {}: {e}",
            path.display()
        ))
    })?;
    let doc: Value = serde_yaml::from_slice(&bytes).map_err(|e| {
        Error::Config(format!(
            "the MAS config {} is not valid YAML: {}",
            path.display(),
            e.to_string().lines().next().unwrap_or("")
        ))
    })?;
    let s = |v: &Value| v.as_str().map(str::to_string);
    let client = doc["clients"].as_sequence().and_then(|list| {
        list.iter()
            .find_map(|c| Some((s(&c["client_id"])?, Secret::new(s(&c["client_secret"])?))))
    });
    Ok(MasConfig {
        public_base: s(&doc["http"]["public_base"]),
        client,
        minimum_complexity: doc["passwords"]["minimum_complexity"]
            .as_u64()
            .map(|n| n.min(4) as u8),
        homeserver: s(&doc["matrix"]["homeserver"]),
    })
}

/// MAS's setup, and the server name when it is known.
pub type Resolved = (Arc<Setup>, Option<String>);

/// MAS's setup and the server name, or `None` when the run is not for MAS.
pub fn resolve(
    opts: &Options,
    server_url: &str,
    transport: &Transport,
    console: &Console,
    config_server_name: Option<String>,
    deadline: Option<std::time::Instant>,
) -> Result<Option<Resolved>, Error> {
    if !wanted(opts) {
        return Ok(None);
    }
    let cfg = match &opts.mas_config {
        Some(p) => {
            console.verbose(&format!("MAS: config {}", p.display()));
            read_mas_config(p)?
        }
        None => MasConfig::default(),
    };
    let client_id = opts
        .mas_client_id
        .clone()
        .or_else(|| cfg.client.as_ref().map(|(id, _)| id.clone()));
    let secret = match &opts.mas_client_secret_file {
        Some(p) => {
            crate::files::warn_if_world_readable(p, "the MAS client secret file", console);
            Some(crate::files::read_secret_file(
                p,
                "--mas-client-secret-file",
            )?)
        }
        None => cfg.client.as_ref().map(|(_, s)| s.clone()),
    };
    let (Some(client_id), Some(secret)) = (client_id, secret) else {
        return Err(Error::Usage(
            "registering through MAS needs its client's credentials: give --mas-client-id ID \
             and --mas-client-secret-file FILE, or --mas-config FILE"
                .into(),
        ));
    };
    let hs = Homeserver::new(server_url, transport)
        .map_err(|e| Error::Config(e.to_string()))?
        .until(deadline);
    let url = match opts.mas_url.clone().or(cfg.public_base) {
        Some(u) => u,
        None if opts.dry_run => server_url.to_string(),
        None => hs.auth_issuer().ok_or_else(|| {
            Error::Config(format!(
                "{server_url} does not say that it delegates authentication (it serves no auth \
                 metadata); give MAS's address with --mas-url URL"
            ))
        })?,
    };
    let url = url.trim_end_matches('/').to_string();
    crate::homeserver::check_url(&url)?;
    console.verbose(&format!("MAS: {url}, client {client_id}"));
    let creds = Credentials::new(client_id, secret);
    let known_name = config_server_name.or(cfg.homeserver);
    let setup = |complexity: Option<u8>, creds: Credentials| {
        Arc::new(Setup {
            url: url.clone(),
            creds,
            minimum_complexity: cfg
                .minimum_complexity
                .or(complexity)
                .unwrap_or(DEFAULT_COMPLEXITY),
        })
    };
    if opts.dry_run {
        return Ok(Some((setup(None, creds), known_name)));
    }
    let mas_hs = Homeserver::new(&url, transport)
        .map_err(|e| Error::Config(e.to_string()))?
        .until(deadline);
    let mas = Mas::new(mas_hs, &creds);
    mas.token()
        .map_err(|e| Error::Config(format!("cannot get a MAS admin token: {e}")))?;
    // MAS says which server it serves and how strong a password must be.
    let (site_name, complexity) = mas
        .site_config()
        .map_err(|e| Error::Config(format!("cannot read MAS's site config: {e}")))?;
    let server_name = match known_name.or(site_name) {
        Some(n) => n,
        None => hs
            .server_name()
            .map_err(|e| Error::Config(format!("cannot learn the server's name: {e}")))?,
    };
    console.verbose(&format!("MAS: server name {server_name}"));
    Ok(Some((setup(complexity, creds), Some(server_name))))
}
