//! Resolve config: the shared secret, the server URL and the tool's own
//! settings, from `-k`, `--shared-secret-file` or the homeserver config files
//! given with `-c`.
//!
//! Config files are merged shallowly: a top-level key of a later file replaces
//! the same key of an earlier one. The tool's own settings live under the
//! top-level key `register_new_matrix_user`, which the homeserver ignores.

use crate::error::Error;
use crate::homeserver::Transport;
use crate::record::Record;
use crate::secret::Secret;
use crate::stages::{Ctx, Resolved};
use serde_yaml::{Mapping, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const DEFAULT_SERVER_URL: &str = "http://localhost:8008";
/// The top-level config key holding this tool's settings.
pub const TOOL_KEY: &str = "register_new_matrix_user";

pub fn run(rec: &mut Record, ctx: &mut Ctx<'_>) -> Result<(), Error> {
    let cli = ctx.opts;
    let config = if cli.config.is_empty() {
        None
    } else {
        Some(load(&cli.config, ctx.console)?)
    };

    let console = ctx.console;
    // A homeserver behind MAS has no shared secret to give.
    let for_mas = super::mas_setup::wanted(cli);
    let secret = if let Some(k) = &cli.shared_secret {
        if k.is_empty() {
            return Err(Error::Config(
                "the shared secret given with -k is empty".into(),
            ));
        }
        console.verbose("shared secret: from -k");
        Secret::new(k.clone())
    } else if let Some(path) = &cli.shared_secret_file {
        warn_if_world_readable(path, "the shared secret file", console);
        console.verbose(&format!("shared secret: from {}", path.display()));
        read_secret_file(path, "--shared-secret-file")?
    } else if let Some(cfg) = &config {
        if let Some(p) = &cfg.inline_secret_from {
            warn_if_world_readable(
                p,
                "the config file holding registration_shared_secret",
                console,
            );
        }
        if let Some(Value::String(p)) = cfg.merged.get("registration_shared_secret_path") {
            warn_if_world_readable(Path::new(p), "registration_shared_secret_path", console);
            console.verbose(&format!(
                "shared secret: from registration_shared_secret_path {p}"
            ));
        } else if let Some(p) = &cfg.inline_secret_from {
            console.verbose(&format!(
                "shared secret: from registration_shared_secret in {}",
                p.display()
            ));
        }
        match secret_from_config(&cfg.merged) {
            Err(_) if for_mas => Secret::new(String::new()),
            r => r?,
        }
    } else if for_mas {
        Secret::new(String::new())
    } else {
        return Err(Error::Usage(
            "give the shared secret with -c, -k or --shared-secret-file".into(),
        ));
    };

    if rec.server_url.is_none() {
        let url = match &config {
            Some(cfg) => match client_listener_url(&cfg.merged).map_err(|e| {
                match (e, &cfg.listeners_from) {
                    (Error::Config(m), Some(file)) => {
                        Error::Config(format!("config file {}: {m}", file.display()))
                    }
                    (e, _) => e,
                }
            })? {
                Some(url) => url,
                None => {
                    ctx.console.warn(&format!(
                        "the config has no plain-HTTP listener serving the client API; \
                         trying {DEFAULT_SERVER_URL}"
                    ));
                    DEFAULT_SERVER_URL.to_string()
                }
            },
            None => {
                ctx.console.warn(&format!(
                    "no server URL and no config file given; using {DEFAULT_SERVER_URL}"
                ));
                DEFAULT_SERVER_URL.to_string()
            }
        };
        rec.server_url = Some(url);
    }
    if let Some(url) = &rec.server_url {
        check_url(url)?;
        console.verbose(&format!("server: {url}"));
        if let Some(host) = plain_http_host(url) {
            console.warn(&format!(
                "the password will travel unencrypted over plain http to {host}; use https"
            ));
        }
    }
    let transport = transport(cli, console)?;

    let (tool, hooks) = match &config {
        Some(cfg) => (cfg.tool.clone(), cfg.hooks.clone()),
        None => (serde_json::Value::Null, Vec::new()),
    };
    let password_policy = config
        .as_ref()
        .map(|cfg| crate::policy::PasswordPolicy::from_config(&cfg.merged))
        .unwrap_or_default();
    let password_login_off = config
        .as_ref()
        .and_then(|cfg| crate::policy::password_login_off(&cfg.merged));
    if let Some(why) = password_login_off {
        console.warn(&format!(
            "the homeserver's config turns password login off ({why}): the account is \
             created, but its password will not log in"
        ));
    }
    let config_server_name = config
        .as_ref()
        .and_then(|c| c.merged.get("server_name"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let mas = match &rec.server_url {
        Some(url) => super::mas_setup::resolve(
            cli,
            url,
            &transport,
            console,
            config_server_name.clone(),
            ctx.deadline,
        )?,
        None => None,
    };
    let admin_token = admin_token(cli, config.as_ref(), console)?;
    // Through MAS, its client's credentials do what an admin token does.
    let needs_token =
        mas.is_none() && (ctx.mode != crate::options::Mode::Register || cli.rollback.is_some());
    let admin_user = match (&admin_token, &rec.server_url) {
        (Some(token), Some(url)) if ctx.mode != crate::options::Mode::DryRun => {
            let hs = crate::homeserver::Homeserver::new(url, &transport)
                .map_err(|e| Error::Config(e.to_string()))?;
            let who = hs
                .until(ctx.deadline)
                .admin(token)
                .check()
                .map_err(|e| Error::Config(e.to_string()))?;
            console.verbose(&format!("admin token: {who}'s"));
            Some(who)
        }
        (None, _) if needs_token && ctx.mode != crate::options::Mode::DryRun => {
            return Err(Error::Usage(format!(
                "{} needs a server admin's access token: give --admin-token-file FILE (or \
                 admin_token_path in the config's {TOOL_KEY} section)",
                if cli.rollback.is_some() {
                    "--rollback"
                } else if cli.plan {
                    "--plan"
                } else {
                    "--ensure"
                }
            )));
        }
        _ => None,
    };
    let mut user_types: Vec<String> = vec!["support".into(), "bot".into()];
    if let Some(Value::Sequence(extra)) = config
        .as_ref()
        .and_then(|c| c.merged.get("user_types"))
        .and_then(|u| u.get("extra_user_types"))
    {
        user_types.extend(extra.iter().filter_map(Value::as_str).map(str::to_string));
    }
    let secret_files = secret_files(cli, config.as_ref(), console);
    ctx.resolved = Some(Arc::new(Resolved {
        secret,
        config_hooks: hooks,
        tool_config: tool,
        transport,
        password_policy,
        admin_token,
        admin_user,
        backend_shared: Arc::new(crate::backend::synapse::Shared::new(secret_files)),
        config_server_name: match &mas {
            Some((_, name)) => name.clone(),
            None => config_server_name,
        },
        learned_server_name: std::sync::OnceLock::new(),
        mas: mas.map(|(setup, _)| setup),
        user_types,
        password_login_off,
    }));
    Ok(())
}

/// The files of this run that hold secrets, as device and inode: never to
/// be read as anything else (an avatar).
fn secret_files(
    cli: &crate::options::Options,
    config: Option<&Config>,
    console: &crate::console::Console,
) -> Vec<(u64, u64)> {
    let mut paths: Vec<PathBuf> = [
        &cli.shared_secret_file,
        &cli.password_file,
        &cli.admin_token_file,
        &cli.mas_client_secret_file,
        &cli.mas_config,
        &cli.output,
        &cli.rollback,
    ]
    .into_iter()
    .flatten()
    .filter(|p| p.as_os_str() != "-")
    .cloned()
    .collect();
    paths.extend(config_files(&cli.config, console).unwrap_or_default());
    if let Some(cfg) = config {
        paths.extend(cfg.admin_token_path.clone());
        // Synapse's own secret files.
        for key in [
            "registration_shared_secret_path",
            "macaroon_secret_key_path",
            "form_secret_path",
            "signing_key_path",
            "worker_replication_secret_path",
        ] {
            if let Some(Value::String(p)) = cfg.merged.get(key) {
                paths.push(PathBuf::from(p));
            }
        }
        // The directory's bind password (`ldap.bind_password_path`).
        if let Some(serde_json::Value::String(p)) = cfg
            .tool
            .get("ldap")
            .and_then(|l| l.get("bind_password_path"))
        {
            paths.push(PathBuf::from(p));
        }
    }
    paths
        .iter()
        .filter_map(|p| crate::backend::avatar::identity(p))
        .collect()
}

/// The admin token, from `--admin-token-file` or the config's
/// `admin_token_path`, under the rules of every secret file.
fn admin_token(
    opts: &crate::options::Options,
    config: Option<&Config>,
    console: &crate::console::Console,
) -> Result<Option<Secret>, Error> {
    let (path, what) = match (
        &opts.admin_token_file,
        config.and_then(|c| c.admin_token_path.as_ref()),
    ) {
        (Some(p), _) => (p, "--admin-token-file"),
        (None, Some(p)) => (p, "admin_token_path"),
        (None, None) => return Ok(None),
    };
    warn_if_world_readable(path, "the admin token file", console);
    console.verbose(&format!("admin token: from {}", path.display()));
    let token = read_secret_file(path, what)?;
    // An access token is one word: anything else would travel in a header.
    if token
        .expose()
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Error::Config(format!(
            "the admin token file {} holds more than one token (a line break, a space or a \
             control character inside it); it should hold the access token alone",
            path.display()
        )));
    }
    Ok(Some(token))
}

/// The merged config files.
#[derive(Debug, Default)]
pub struct Config {
    pub merged: Mapping,
    /// The file whose `registration_shared_secret` the merge kept.
    pub inline_secret_from: Option<PathBuf>,
    /// The `register_new_matrix_user` section, as JSON for hooks.
    pub tool: serde_json::Value,
    /// Hook files listed under `register_new_matrix_user.hooks`, relative
    /// paths taken from the directory of the file that lists them.
    pub hooks: Vec<PathBuf>,
    /// `register_new_matrix_user.admin_token_path`, likewise.
    pub admin_token_path: Option<PathBuf>,
    /// The file whose `listeners` the merge kept.
    pub listeners_from: Option<PathBuf>,
}

/// The files `-c` names, as Synapse's own `-c` reads them: a file as it is;
/// a directory as its `*.yaml` files (regular files, links to them included)
/// in sorted order, passing over subdirectories and other files.
pub fn config_files(
    paths: &[PathBuf],
    console: &crate::console::Console,
) -> Result<Vec<PathBuf>, Error> {
    let mut out = Vec::new();
    for path in paths {
        if !path.is_dir() {
            out.push(path.clone());
            continue;
        }
        let entries = std::fs::read_dir(path).map_err(|e| {
            Error::Usage(format!(
                "cannot open config directory {}: {}",
                path.display(),
                io_cause(&e)
            ))
        })?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| {
                Error::Usage(format!(
                    "cannot read config directory {}: {}",
                    path.display(),
                    io_cause(&e)
                ))
            })?;
            let p = entry.path();
            if !p.is_file() {
                console.verbose(&format!(
                    "config: passing over {} (not a file)",
                    p.display()
                ));
            } else if !entry.file_name().as_encoded_bytes().ends_with(b".yaml") {
                console.verbose(&format!(
                    "config: passing over {} (not *.yaml)",
                    p.display()
                ));
            } else {
                files.push(p);
            }
        }
        files.sort();
        out.extend(files);
    }
    Ok(out)
}

pub fn load(paths: &[PathBuf], console: &crate::console::Console) -> Result<Config, Error> {
    let mut cfg = Config::default();
    for path in &config_files(paths, console)? {
        console.debug(&format!("config: reading {}", path.display()));
        // As the original, whatever the reason: a -c that cannot be opened
        // (or is past the size read) is a command-line error.
        let bytes = crate::files::read_regular(path, crate::files::CONFIG_MAX).map_err(|e| {
            Error::Usage(format!("cannot open config file {}: {e}", path.display()))
        })?;
        let text = String::from_utf8(bytes).map_err(|_| {
            Error::Config(format!(
                "config file {} is not valid YAML: it is not UTF-8 text",
                path.display()
            ))
        })?;
        crate::files::check_yaml_nesting(&text).map_err(|e| {
            Error::Config(format!(
                "config file {} is not valid YAML: {e}",
                path.display()
            ))
        })?;
        // As Synapse reads it: PyYAML, YAML 1.1.
        let value: Value = crate::yaml11::load(&text).map_err(|e| {
            Error::Config(format!(
                "config file {} is not valid YAML: {e}",
                path.display()
            ))
        })?;
        let Value::Mapping(map) = value else {
            console.warn(&format!(
                "config file {} is empty or not a mapping of keys to values; ignoring it",
                path.display()
            ));
            continue;
        };
        if let Some(section) = map.get(TOOL_KEY) {
            let (tool, hooks, token) = tool_section(section, path)?;
            cfg.tool = tool;
            cfg.hooks = hooks;
            cfg.admin_token_path = token;
        }
        if map.contains_key("registration_shared_secret") {
            cfg.inline_secret_from = Some(path.clone());
        }
        if map.contains_key("listeners") {
            cfg.listeners_from = Some(path.clone());
        }
        for (k, v) in map {
            cfg.merged.insert(k, v);
        }
    }
    Ok(cfg)
}

/// The tool's section: as JSON for hooks, its hook files, and the admin
/// token's file (paths relative to the config file's directory).
type ToolSection = (serde_json::Value, Vec<PathBuf>, Option<PathBuf>);

fn tool_section(section: &Value, path: &Path) -> Result<ToolSection, Error> {
    let bad =
        |what: &str| Error::Config(format!("config file {}: {TOOL_KEY}.{what}", path.display()));
    let json = serde_json::to_value(section).map_err(|e| bad(&format!(" cannot be read: {e}")))?;
    if !json.is_object() && !json.is_null() {
        return Err(bad(" must be a mapping"));
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let hooks = match json.get("hooks") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|h| {
                h.as_str()
                    .map(|s| base.join(s))
                    .ok_or_else(|| bad("hooks must list file paths"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad("hooks must be a list of file paths")),
    };
    let token = match json.get("admin_token_path") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(p)) => Some(base.join(p)),
        Some(_) => return Err(bad("admin_token_path must be a file path")),
    };
    Ok((json, hooks, token))
}

pub fn secret_from_config(cfg: &Mapping) -> Result<Secret, Error> {
    let string_key = |key: &str| -> Result<Option<String>, Error> {
        match cfg.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(Error::Config(format!(
                "{key} in the config is not a string"
            ))),
        }
    };
    let inline = string_key("registration_shared_secret")?;
    let path = string_key("registration_shared_secret_path")?;
    match (inline, path) {
        (Some(_), Some(_)) => Err(Error::Config(
            "the config sets both registration_shared_secret and registration_shared_secret_path; \
             it must set only one"
                .into(),
        )),
        (None, None) => Err(Error::Config(
            "the config sets neither registration_shared_secret nor registration_shared_secret_path, \
             so there is no shared secret to sign with"
                .into(),
        )),
        (Some(s), None) => Ok(Secret::new(s)),
        (None, Some(p)) => read_secret_file(Path::new(&p), "registration_shared_secret_path"),
    }
}

/// The first listener of type `http`, without TLS, that serves the `client`
/// resource, as a URL on localhost.
pub fn client_listener_url(cfg: &Mapping) -> Result<Option<String>, Error> {
    let Some(Value::Sequence(listeners)) = cfg.get("listeners") else {
        return Ok(None);
    };
    for listener in listeners {
        let field = |k: &str| listener.get(k);
        if field("type").and_then(Value::as_str) != Some("http") {
            continue;
        }
        if field("tls").is_some_and(truthy) {
            continue;
        }
        let serves_client = field("resources")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .filter_map(|r| r.get("names").and_then(Value::as_sequence))
            .flatten()
            .any(|n| n.as_str() == Some("client"));
        if !serves_client {
            continue;
        }
        if let Some(port) = field("port") {
            let port = match port {
                Value::Number(n) => n.as_u64().filter(|p| (1..=65535).contains(p)),
                Value::String(s) => s.parse::<u64>().ok().filter(|p| (1..=65535).contains(p)),
                _ => None,
            };
            return match port {
                Some(p) => Ok(Some(format!("http://localhost:{p}"))),
                None => Err(Error::Config(
                    "the config's client listener has a port that is not a number from 1 to 65535"
                        .into(),
                )),
            };
        }
        if let Some(path) = field("path").and_then(Value::as_str) {
            return Ok(Some(format!("unix:{path}")));
        }
        return Err(Error::Config(
            "the config's client listener has neither a port nor a path".into(),
        ));
    }
    Ok(None)
}

/// Timeouts and TLS trust from `--timeout`, `--cacert` and `--insecure`.
fn transport(
    cli: &crate::options::Options,
    console: &crate::console::Console,
) -> Result<Transport, Error> {
    let mut t = Transport {
        timeout: cli.timeout,
        policy: crate::retry::Policy {
            retries: cli.retries.unwrap_or(
                if cli.batch.is_some() || cli.rollback.is_some() || cli.export.is_some() {
                    crate::retry::BATCH_RETRIES
                } else {
                    0
                },
            ),
            max_wait: cli.max_wait,
            waits: std::sync::Arc::default(),
        },
        ..Transport::default()
    };
    if console.level() == crate::console::Level::Quiet {
        t.policy.waits.set_output(|_| {});
    }
    if let Some(path) = &cli.cacert {
        let pem = crate::files::read_regular(path, crate::files::CODE_MAX).map_err(|e| {
            Error::Config(format!("cannot read --cacert file {}: {e}", path.display()))
        })?;
        t.extra_roots = reqwest::Certificate::from_pem_bundle(&pem)
            .ok()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                Error::Config(format!(
                    "--cacert file {} holds no PEM certificate",
                    path.display()
                ))
            })?;
    }
    if cli.insecure {
        console.warn(
            "--insecure: TLS certificates are NOT checked; anyone on the path can pose as the \
             homeserver and read the password. Use --cacert for a private CA instead.",
        );
        t.insecure = true;
    }
    Ok(t)
}

/// The host of a plain-http URL that is not on this machine's loopback.
pub fn plain_http_host(url: &str) -> Option<String> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hostport = authority.rsplit('@').next().unwrap_or(authority);
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        hostport.split(':').next().unwrap_or("")
    };
    let host = host.to_ascii_lowercase();
    let loopback = host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    (!loopback).then_some(host)
}

fn truthy(v: &Value) -> bool {
    crate::yaml11::truthy(v)
}

use crate::files::{io_cause, read_secret_file, warn_if_world_readable};
use crate::homeserver::check_url;

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Mapping {
        serde_yaml::from_str(s).unwrap()
    }

    #[test]
    fn listener_discovery_takes_the_first_plain_client_listener() {
        let cfg = yaml(
            "listeners:\n\
             - {port: 8448, type: http, tls: true, resources: [{names: [client]}]}\n\
             - {port: 9000, type: metrics}\n\
             - {port: 8009, type: http, resources: [{names: [federation]}]}\n\
             - {port: 8010, type: http, tls: false, resources: [{names: [federation]}, {names: [client, federation]}]}\n\
             - {port: 8011, type: http, resources: [{names: [client]}]}\n",
        );
        assert_eq!(
            client_listener_url(&cfg).unwrap().as_deref(),
            Some("http://localhost:8010")
        );
    }

    #[test]
    fn listener_discovery_none_and_unix() {
        assert_eq!(client_listener_url(&yaml("server_name: x")).unwrap(), None);
        let unix = yaml(
            "listeners: [{path: /run/synapse.sock, type: http, resources: [{names: [client]}]}]",
        );
        assert_eq!(
            client_listener_url(&unix).unwrap().as_deref(),
            Some("unix:/run/synapse.sock")
        );
        let bad = yaml("listeners: [{port: 99999, type: http, resources: [{names: [client]}]}]");
        assert!(client_listener_url(&bad).is_err());
    }

    #[test]
    fn plain_http_warning_spares_loopback() {
        for url in [
            "http://localhost:8008",
            "http://127.0.0.1:1",
            "http://[::1]:8008/x",
            "http://a.localhost",
            "https://example.org",
            "unix:/run/s.sock",
        ] {
            assert_eq!(plain_http_host(url), None, "{url}");
        }
        assert_eq!(
            plain_http_host("http://matrix.example.org:8008/").as_deref(),
            Some("matrix.example.org")
        );
        assert_eq!(
            plain_http_host("http://user@10.0.0.5").as_deref(),
            Some("10.0.0.5")
        );
    }

    #[test]
    fn later_files_replace_top_level_keys() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.yaml");
        let b = dir.path().join("b.yaml");
        std::fs::write(&a, "registration_shared_secret: one\nlisteners: [{port: 1, type: http, resources: [{names: [client]}]}]\n").unwrap();
        std::fs::write(&b, "registration_shared_secret: two\n").unwrap();
        let console = crate::console::Console::new(crate::console::Level::Quiet, false);
        let cfg = load(&[a, b], &console).unwrap();
        assert_eq!(secret_from_config(&cfg.merged).unwrap().expose(), "two");
        assert_eq!(
            client_listener_url(&cfg.merged).unwrap().as_deref(),
            Some("http://localhost:1")
        );
    }

    #[test]
    fn secret_resolution_errors() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "  \n").unwrap();
        let full = dir.path().join("full");
        std::fs::write(&full, "  abc \n").unwrap();
        let cases = [
            (
                "registration_shared_secret: a\nregistration_shared_secret_path: /x".to_string(),
                "both",
            ),
            ("server_name: x".to_string(), "neither"),
            ("registration_shared_secret: 42".to_string(), "not a string"),
            (
                "registration_shared_secret_path: [a]".to_string(),
                "not a string",
            ),
            (
                format!("registration_shared_secret_path: {}", empty.display()),
                "is empty",
            ),
            (
                "registration_shared_secret_path: /nonexistent/s".to_string(),
                "cannot read",
            ),
        ];
        for (cfg, want) in cases {
            let err = secret_from_config(&yaml(&cfg)).unwrap_err().to_string();
            assert!(err.contains(want), "{cfg}: {err}");
        }
        let ok = yaml(&format!(
            "registration_shared_secret_path: {}",
            full.display()
        ));
        assert_eq!(secret_from_config(&ok).unwrap().expose(), "abc");
    }

    #[test]
    fn missing_file_is_a_usage_error_and_bad_yaml_is_not() {
        let console = crate::console::Console::new(crate::console::Level::Quiet, false);
        let err = load(&[PathBuf::from("/nonexistent.yaml")], &console).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, "a: [1, 2\n").unwrap();
        let err = load(std::slice::from_ref(&bad), &console).unwrap_err();
        assert_eq!(err.exit_code(), 1);
        assert!(err.to_string().contains("not valid YAML"), "{err}");
        // docs/failures.md's line: a line and a column, no byte offset.
        std::fs::write(&bad, "server_name: \"unclosed\n").unwrap();
        let err = load(std::slice::from_ref(&bad), &console)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "config file {} is not valid YAML: while scanning a quoted scalar, found \
                 unexpected end of stream at line 1 column 14",
                bad.display()
            )
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "[a-z0-9 :/_.-]{0,12}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            let keys = prop_oneof![
                Just("listeners".to_string()),
                Just("port".to_string()),
                Just("path".to_string()),
                Just("type".to_string()),
                Just("tls".to_string()),
                Just("resources".to_string()),
                Just("names".to_string()),
                Just("registration_shared_secret".to_string()),
                Just("registration_shared_secret_path".to_string()),
                Just(TOOL_KEY.to_string()),
                Just("hooks".to_string()),
                "[a-z]{1,6}",
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                prop::collection::btree_map(keys, inner, 0..5)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn check(text: &[u8]) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hs.yaml");
        std::fs::write(&p, text).unwrap();
        let console = crate::console::Console::new(crate::console::Level::Quiet, false);
        if let Ok(cfg) = load(&[p], &console) {
            let _ = secret_from_config(&cfg.merged);
            let _ = client_listener_url(&cfg.merged);
        }
    }

    proptest! {
        /// Arbitrary bytes: an answer from the loader, never a panic.
        #[test]
        fn any_bytes(text in prop::collection::vec(any::<u8>(), 0..512)) {
            check(&text);
        }

        /// Config-shaped YAML with values of every type where the loader
        /// expects specific ones.
        #[test]
        fn config_shaped_yaml(v in json()) {
            check(serde_yaml::to_string(&v).unwrap().as_bytes());
        }
    }
}
