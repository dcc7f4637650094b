//! A directory as a batch input: `--batch ldap://host:port/BASE?ATTRS?SCOPE?FILTER`
//! (RFC 4516; `ldaps://` too), or `--batch ldap:` for the config section's
//! `ldap:` block. Each entry the search returns is one row, mapped from its
//! attributes to the fields `--ensure` manages, with the entry's text
//! attributes for hooks as `rec.extra.ldap`.
//!
//! The search pages with the paged-results control (RFC 2696), so a
//! directory larger than the server's size limit is read whole, and
//! streams: a thread reads the entries into a small queue the batch takes
//! rows from, so memory does not grow with the directory. A search that
//! does not end in success (a size or time limit, a referral, a connection
//! dropped midway) ends the rows with one that cannot be read, so `--prune`
//! prunes nobody; a bind that fails is an error before any row.
//!
//! Group membership comes from the entries' `memberOf`, or, where the
//! server has no memberOf overlay (`groups_from: member`), from the
//! configured groups' `member`/`uniqueMember` values, read first. Nested
//! groups are not followed.
//!
//! An entry's photo (`jpegPhoto`) is written once per distinct image, named
//! by its SHA-256, into a private directory of the run (removed when the
//! rows are), and that file is the row's avatar, checked and uploaded as
//! every avatar file is.

use super::reader::{Fields, Row, Rows};
use crate::error::Error;
use serde_json::{Map, Value};
use std::collections::HashSet;

/// The attributes of a person, for an inetOrgPerson directory by default.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub username: String,
    pub displayname: Option<String>,
    pub emails: Option<String>,
    /// An image attribute (`jpegPhoto`), uploaded as the avatar.
    pub avatar: Option<String>,
    /// `(auth_provider, attribute)`: the attribute's value is the external ID.
    pub external_id: Option<(String, String)>,
    /// How the entry says the account is active (`None`: not managed).
    pub active: Option<Active>,
}

/// An entry's active state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Active {
    /// Active Directory's `userAccountControl`: bit 2 (ACCOUNTDISABLE) set
    /// means disabled.
    AccountControl(String),
    /// Members of this group are disabled; everyone else is active.
    DisabledGroup(String),
}

/// Where group membership is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupsFrom {
    MemberOf,
    Member,
}

/// One directory search and what its entries mean.
#[derive(Debug, Clone)]
pub struct Directory {
    pub url: String,
    pub bind_dn: Option<String>,
    pub bind_password: Option<crate::secret::Secret>,
    pub base: String,
    pub scope: ldap3::Scope,
    pub filter: String,
    pub ca_file: Option<std::path::PathBuf>,
    pub starttls: bool,
    pub page_size: i32,
    pub map: Mapping,
    pub groups_from: GroupsFrom,
    /// Members of this group are admins; everyone else is not.
    pub admin_group: Option<String>,
    /// Members of each group join its rooms.
    pub rooms_from_groups: Vec<(String, Vec<String>)>,
}

/// Whether a `--batch` argument names a directory.
pub fn is_directory(spec: &str) -> bool {
    spec == "ldap:" || spec.starts_with("ldap://") || spec.starts_with("ldaps://")
}

/// A DN as compared: lowercased, without spaces around `,` and `=`.
fn dn_key(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| {
            rdn.split('=')
                .map(str::trim)
                .collect::<Vec<_>>()
                .join("=")
                .to_lowercase()
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn percent_decode(s: &str) -> Result<String, String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|d| d.into_owned())
        .map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

/// The directory a `--batch` argument and the config section's `ldap:`
/// block describe. A URL's base, scope and filter override the block's.
pub fn directory(spec: &str, tool: &Value) -> Result<Directory, Error> {
    let bad = |why: String| Error::Config(format!("ldap: {why}"));
    let block = tool.get("ldap").cloned().unwrap_or(Value::Null);
    if !(block.is_null() || block.is_object()) {
        return Err(bad("the config's ldap block must be a mapping".into()));
    }
    let text = |k: &str| -> Result<Option<String>, Error> {
        match block.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(bad(format!("{k} is {other}, not text"))),
        }
    };
    let (url, base, scope, filter) = if spec == "ldap:" {
        let url = text("url")?.ok_or_else(|| {
            Error::Usage(
                "--batch ldap: reads the config's register_new_matrix_user.ldap block, which \
                 gives no url"
                    .into(),
            )
        })?;
        (url, text("base")?, text("scope")?, text("filter")?)
    } else {
        parse_url(spec).map_err(|why| Error::Usage(format!("--batch {spec}: {why}")))?
    };
    let base = base
        .or(text("base")?)
        .ok_or_else(|| bad("no base DN: give it in the URL or the block".into()))?;
    let scope = match scope.or(text("scope")?).as_deref().unwrap_or("sub") {
        "sub" | "subtree" => ldap3::Scope::Subtree,
        "one" | "onelevel" => ldap3::Scope::OneLevel,
        "base" => ldap3::Scope::Base,
        other => return Err(bad(format!("scope {other:?} is not base, one or sub"))),
    };
    let filter = filter
        .or(text("filter")?)
        .unwrap_or_else(|| "(objectClass=inetOrgPerson)".into());
    let bind_password = match text("bind_password_path")? {
        Some(p) => Some(crate::files::read_secret_file(
            std::path::Path::new(&p),
            "the ldap bind password file",
        )?),
        None => None,
    };
    let attrs = block.get("attributes").cloned().unwrap_or(Value::Null);
    let attr = |k: &str, default: Option<&str>| -> Result<Option<String>, Error> {
        match attrs.get(k) {
            None => Ok(default.map(str::to_string)),
            Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(bad(format!("attributes.{k} is {other}, not text"))),
        }
    };
    let external_id = match block.get("external_ids") {
        None | Some(Value::Null) => None,
        Some(v) => match (
            v.get("auth_provider").and_then(Value::as_str),
            v.get("attribute").and_then(Value::as_str),
        ) {
            (Some(p), Some(a)) => Some((p.to_string(), a.to_string())),
            _ => {
                return Err(bad(
                    "external_ids must be {auth_provider: ..., attribute: ...}".into(),
                ));
            }
        },
    };
    let active = match (text("disabled_group")?, attr("account_control", None)?) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "give disabled_group or attributes.account_control, not both".into(),
            ));
        }
        (Some(g), None) => Some(Active::DisabledGroup(dn_key(&g))),
        (None, Some(a)) => Some(Active::AccountControl(a)),
        (None, None) => None,
    };
    let groups_from = match text("groups_from")?.as_deref().unwrap_or("memberOf") {
        "memberOf" | "memberof" => GroupsFrom::MemberOf,
        "member" => GroupsFrom::Member,
        other => {
            return Err(bad(format!(
                "groups_from {other:?} is not memberOf or member"
            )));
        }
    };
    let mut rooms_from_groups = Vec::new();
    match block.get("rooms_from_groups") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (group, rooms) in m {
                let rooms = rooms
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .ok_or_else(|| bad(format!("rooms_from_groups.{group} must be a list")))?;
                rooms_from_groups.push((dn_key(group), rooms));
            }
        }
        Some(_) => {
            return Err(bad(
                "rooms_from_groups must map group DNs to lists of rooms".into(),
            ));
        }
    }
    let page_size = match block.get("page_size") {
        None | Some(Value::Null) => 500,
        Some(v) => v
            .as_i64()
            .filter(|n| (1..=100_000).contains(n))
            .map(|n| n as i32)
            .ok_or_else(|| bad("page_size must be a number from 1 to 100000".into()))?,
    };
    Ok(Directory {
        url,
        bind_dn: text("bind_dn")?,
        bind_password,
        base,
        scope,
        filter,
        ca_file: text("ca_file")?.map(Into::into),
        starttls: block
            .get("starttls")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        page_size,
        map: Mapping {
            username: attr("username", Some("uid"))?.unwrap_or_else(|| "uid".into()),
            displayname: attr("displayname", Some("cn"))?,
            emails: attr("emails", Some("mail"))?,
            avatar: attr("avatar", Some("jpegPhoto"))?,
            external_id,
            active,
        },
        groups_from,
        admin_group: text("admin_group")?.map(|g| dn_key(&g)),
        rooms_from_groups,
    })
}

type UrlParts = (String, Option<String>, Option<String>, Option<String>);

/// `ldap://host:port/BASE?ATTRS?SCOPE?FILTER`: the server's URL, and the
/// base, scope and filter it gives (the attributes are the mapping's).
fn parse_url(spec: &str) -> Result<UrlParts, String> {
    let (scheme, rest) = spec
        .split_once("://")
        .ok_or_else(|| "not an ldap:// URL".to_string())?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    if host.is_empty() {
        return Err("names no host".into());
    }
    let mut parts = path.splitn(4, '?');
    let part = |p: Option<&str>| -> Result<Option<String>, String> {
        match p {
            None | Some("") => Ok(None),
            Some(s) => percent_decode(s).map(Some),
        }
    };
    let base = part(parts.next())?;
    let _attrs = parts.next();
    let scope = part(parts.next())?;
    let filter = part(parts.next())?;
    Ok((format!("{scheme}://{host}"), base, scope, filter))
}

/// The directory's entries as rows, streamed; an error when the server
/// cannot be reached or the bind fails.
pub fn open(dir: Directory) -> Result<Rows, Error> {
    let mut conn = connect(&dir)?;
    let members = match dir.groups_from {
        GroupsFrom::MemberOf => None,
        GroupsFrom::Member => Some(group_members(&mut conn, &dir)?),
    };
    let photos = match &dir.map.avatar {
        None => None,
        Some(_) => Some(std::sync::Arc::new(
            tempfile::Builder::new()
                .prefix("rnmu-photos.")
                .tempdir()
                .map_err(|e| {
                    Error::Input(format!(
                        "cannot make a directory for the entries' photos: {}",
                        crate::files::io_cause(&e)
                    ))
                })?,
        )),
    };
    let (tx, rx) = std::sync::mpsc::sync_channel::<Row>(256);
    let held = photos.clone();
    std::thread::spawn(move || {
        let mut line = 0usize;
        let mut staged = Photos {
            dir: photos,
            written: HashSet::new(),
        };
        let failure = search(&mut conn, &dir, members.as_ref(), &mut staged, |row| {
            line += 1;
            tx.send(Row { line, ..row }).is_ok()
        });
        if let Some(why) = failure {
            let _ = tx.send(Row {
                line: line + 1,
                username: None,
                fields: Err(why),
            });
        }
        let _ = conn.unbind();
    });
    Ok(Box::new(Held {
        rows: rx.into_iter(),
        _photos: held,
    }))
}

/// The rows, holding the photos' directory for as long as they live.
struct Held {
    rows: std::sync::mpsc::IntoIter<Row>,
    _photos: Option<std::sync::Arc<tempfile::TempDir>>,
}

impl Iterator for Held {
    type Item = Row;
    fn next(&mut self) -> Option<Row> {
        self.rows.next()
    }
}

/// The photos written so far, by SHA-256.
struct Photos {
    dir: Option<std::sync::Arc<tempfile::TempDir>>,
    written: HashSet<String>,
}

impl Photos {
    /// The file holding `bytes`, written the first time they are seen.
    fn stage(&mut self, bytes: &[u8]) -> Result<String, String> {
        let Some(dir) = &self.dir else {
            return Err("no directory for photos".into());
        };
        let sha = crate::backend::synapse::sha256_hex(bytes);
        let ext = match crate::backend::avatar::sniff(bytes) {
            Some("image/png") => "png",
            Some("image/gif") => "gif",
            Some("image/webp") => "webp",
            Some(_) => "jpg",
            None => return Err("is not a PNG, JPEG, GIF or WebP image".into()),
        };
        if bytes.len() as u64 > crate::backend::avatar::AVATAR_MAX {
            return Err(format!(
                "is larger than {} MiB",
                crate::backend::avatar::AVATAR_MAX >> 20
            ));
        }
        let path = dir.path().join(format!("{sha}.{ext}"));
        if !self.written.contains(&sha) {
            std::fs::write(&path, bytes)
                .map_err(|e| format!("cannot be written out: {}", crate::files::io_cause(&e)))?;
            self.written.insert(sha);
        }
        Ok(path.display().to_string())
    }
}

fn connect(dir: &Directory) -> Result<ldap3::LdapConn, Error> {
    let mut settings = ldap3::LdapConnSettings::new()
        .set_conn_timeout(std::time::Duration::from_secs(30))
        .set_starttls(dir.starttls);
    if let Some(ca) = &dir.ca_file {
        settings = settings.set_config(tls_config(ca)?);
    }
    let cause = |e: ldap3::LdapError| crate::state::quoted(&e.to_string());
    let mut conn = ldap3::LdapConn::with_settings(settings, &dir.url).map_err(|e| {
        Error::Input(format!(
            "cannot reach the directory at {}: {}",
            dir.url,
            cause(e)
        ))
    })?;
    if let Some(dn) = &dir.bind_dn {
        let pw = dir.bind_password.as_ref().map(|p| p.expose()).unwrap_or("");
        conn.simple_bind(dn, pw)
            .and_then(|r| r.success())
            .map_err(|e| {
                Error::Input(format!(
                    "the directory at {} refused the bind as {dn}: {}",
                    dir.url,
                    cause(e)
                ))
            })?;
    }
    Ok(conn)
}

fn tls_config(ca: &std::path::Path) -> Result<std::sync::Arc<rustls::ClientConfig>, Error> {
    let bad = |why: String| Error::Config(format!("ldap: ca_file {}: {why}", ca.display()));
    let pem = std::fs::read(ca).map_err(|e| bad(crate::files::io_cause(&e)))?;
    let mut roots = rustls::RootCertStore::empty();
    use rustls_pki_types::pem::PemObject;
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| bad(e.to_string()))?;
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("holds no certificate".into()));
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(std::sync::Arc::new(config))
}

/// The members of the configured groups, by DN key, read from the groups'
/// own `member` and `uniqueMember` values.
fn group_members(
    conn: &mut ldap3::LdapConn,
    dir: &Directory,
) -> Result<Vec<(String, HashSet<String>)>, Error> {
    let mut groups: Vec<String> = dir.admin_group.iter().cloned().collect();
    groups.extend(dir.rooms_from_groups.iter().map(|(g, _)| g.clone()));
    if let Some(Active::DisabledGroup(g)) = &dir.map.active {
        groups.push(g.clone());
    }
    let mut out = Vec::new();
    for g in groups {
        let (entries, _) = conn
            .search(
                &g,
                ldap3::Scope::Base,
                "(objectClass=*)",
                vec!["member", "uniqueMember"],
            )
            .and_then(|r| r.success())
            .map_err(|e| Error::Input(format!("cannot read the group {g}: {e}")))?;
        let mut set = HashSet::new();
        for e in entries {
            let e = ldap3::SearchEntry::construct(e);
            for (k, vals) in &e.attrs {
                if k.eq_ignore_ascii_case("member") || k.eq_ignore_ascii_case("uniqueMember") {
                    set.extend(vals.iter().map(|v| dn_key(v)));
                }
            }
        }
        out.push((g, set));
    }
    Ok(out)
}

/// Runs the paged search, handing each entry's row to `each` (which says
/// whether to go on); why the search did not end whole, if it did not.
fn search(
    conn: &mut ldap3::LdapConn,
    dir: &Directory,
    members: Option<&Vec<(String, HashSet<String>)>>,
    photos: &mut Photos,
    mut each: impl FnMut(Row) -> bool,
) -> Option<String> {
    use ldap3::adapters::{Adapter, PagedResults};
    let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![Box::new(PagedResults::new(dir.page_size))];
    let mut stream = match conn.streaming_search_with(
        adapters,
        &dir.base,
        dir.scope,
        &dir.filter,
        requested(dir),
    ) {
        Ok(s) => s,
        Err(e) => return Some(format!("the directory search failed: {e}")),
    };
    loop {
        match stream.next() {
            // A referral is a part of the directory this search cannot read.
            Ok(Some(entry)) if entry.is_ref() => {
                return Some(format!(
                    "the directory answered with a referral ({}), which is not followed: the \
                     rows read are not the whole directory",
                    ldap3::parse_refs(entry.0).join(", ")
                ));
            }
            Ok(Some(entry)) if entry.is_intermediate() => {}
            Ok(Some(entry)) => {
                let entry = ldap3::SearchEntry::construct(entry);
                if !each(row_of(&entry, dir, members, photos)) {
                    return Some("the batch stopped reading".into());
                }
            }
            Ok(None) => break,
            Err(e) => return Some(format!("the directory search broke off: {e}")),
        }
    }
    let result = stream.result();
    match result.rc {
        0 => None,
        rc => Some(format!(
            "the directory search did not end whole (result {rc}{}{}): the rows read so far \
             are not the whole directory",
            if result.text.is_empty() { "" } else { ": " },
            result.text
        )),
    }
}

/// The attributes a search asks for: every user attribute (`*`, for hooks),
/// and the operational ones the mapping reads by name (`entryUUID`,
/// `memberOf` where an overlay keeps it), not all of them (`+`), which
/// would double what each entry costs to read.
fn requested(dir: &Directory) -> Vec<String> {
    let mut out = vec!["*".to_string(), dir.map.username.clone()];
    out.extend(dir.map.displayname.iter().cloned());
    out.extend(dir.map.emails.iter().cloned());
    out.extend(dir.map.avatar.iter().cloned());
    out.extend(dir.map.external_id.iter().map(|(_, a)| a.clone()));
    if let Some(Active::AccountControl(a)) = &dir.map.active {
        out.push(a.clone());
    }
    if dir.groups_from == GroupsFrom::MemberOf {
        out.push("memberOf".into());
    }
    let mut seen = HashSet::new();
    out.retain(|a| seen.insert(a.to_ascii_lowercase()));
    out
}

/// The values of `attr` (case-insensitively, as LDAP names attributes).
fn values<'a>(e: &'a ldap3::SearchEntry, attr: &str) -> &'a [String] {
    e.attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attr))
        .map_or(&[], |(_, v)| v.as_slice())
}

/// An entry as a row.
fn row_of(
    e: &ldap3::SearchEntry,
    dir: &Directory,
    members: Option<&Vec<(String, HashSet<String>)>>,
    photos: &mut Photos,
) -> Row {
    let dn = dn_key(&e.dn);
    let groups: HashSet<String> = match members {
        None => values(e, "memberOf").iter().map(|g| dn_key(g)).collect(),
        Some(m) => m
            .iter()
            .filter(|(_, set)| set.contains(&dn))
            .map(|(g, _)| g.clone())
            .collect(),
    };
    let Some(username) = values(e, &dir.map.username).first().cloned() else {
        return Row {
            line: 0,
            username: None,
            fields: Err(format!("the entry {} has no {}", e.dn, dir.map.username)),
        };
    };
    let mut f = Fields {
        username: Some(username.clone()),
        ..Fields::default()
    };
    if let Some(a) = &dir.map.displayname {
        f.displayname = Some(values(e, a).first().cloned().unwrap_or_default());
    }
    if let Some(a) = &dir.map.emails {
        f.emails = Some(values(e, a).to_vec());
    }
    if let Some(a) = &dir.map.avatar {
        let photo = e
            .bin_attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(a))
            .and_then(|(_, v)| v.first().cloned())
            .or_else(|| values(e, a).first().map(|v| v.clone().into_bytes()));
        if let Some(bytes) = photo {
            match photos.stage(&bytes) {
                Ok(path) => f.avatar = Some(path),
                Err(why) => {
                    return Row {
                        line: 0,
                        username: Some(username),
                        fields: Err(format!("the {a} of the entry {} {why}", e.dn)),
                    };
                }
            }
        }
    }
    if let Some((provider, a)) = &dir.map.external_id {
        f.external_ids = Some(
            values(e, a)
                .iter()
                .map(|v| format!("{provider}:{v}"))
                .collect(),
        );
    }
    match &dir.map.active {
        None => {}
        Some(Active::DisabledGroup(g)) => f.active = Some(!groups.contains(g)),
        Some(Active::AccountControl(a)) => {
            let flags: Option<u64> = values(e, a).first().and_then(|v| v.trim().parse().ok());
            match flags {
                Some(flags) => f.active = Some(flags & 2 == 0),
                None => {
                    return Row {
                        line: 0,
                        username: Some(username),
                        fields: Err(format!("the entry {} has no number in {a}", e.dn)),
                    };
                }
            }
        }
    }
    if let Some(g) = &dir.admin_group {
        f.admin = Some(groups.contains(g));
    }
    if !dir.rooms_from_groups.is_empty() {
        let mut rooms: Vec<String> = Vec::new();
        for (g, rs) in &dir.rooms_from_groups {
            if groups.contains(g) {
                for r in rs {
                    if !rooms.contains(r) {
                        rooms.push(r.clone());
                    }
                }
            }
        }
        f.rooms = Some(rooms);
    }
    let mut raw = Map::new();
    raw.insert("dn".into(), Value::from(e.dn.clone()));
    for (k, v) in &e.attrs {
        raw.insert(k.clone(), Value::from(v.clone()));
    }
    f.ldap = Some(raw);
    Row {
        line: 0,
        username: Some(username),
        fields: Ok(f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_dns() {
        let (url, base, scope, filter) =
            parse_url("ldaps://ldap.example.org:636/ou=people,dc=example,dc=org??sub?(uid=a%2A)")
                .unwrap();
        assert_eq!(url, "ldaps://ldap.example.org:636");
        assert_eq!(base.as_deref(), Some("ou=people,dc=example,dc=org"));
        assert_eq!(scope.as_deref(), Some("sub"));
        assert_eq!(filter.as_deref(), Some("(uid=a*)"));
        assert!(parse_url("ldap:///dc=x").is_err());
        assert_eq!(
            dn_key("CN=Admins, OU=Groups,dc=X"),
            "cn=admins,ou=groups,dc=x"
        );
        assert!(is_directory("ldap:") && is_directory("ldaps://h") && !is_directory("people.csv"));
    }

    fn entry(dn: &str, attrs: &[(&str, &[&str])]) -> ldap3::SearchEntry {
        ldap3::SearchEntry {
            dn: dn.into(),
            attrs: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect(),
            bin_attrs: Default::default(),
        }
    }

    /// Every user attribute, and of the operational ones only those the
    /// block reads: never all of them.
    #[test]
    fn the_search_asks_for_what_the_mapping_reads() {
        let tool = serde_json::json!({"ldap": {
            "url": "ldap://h", "base": "dc=x",
            "external_ids": {"auth_provider": "oidc", "attribute": "entryUUID"},
        }});
        let dir = directory("ldap:", &tool).unwrap();
        assert_eq!(
            requested(&dir),
            [
                "*",
                "uid",
                "cn",
                "mail",
                "jpegPhoto",
                "entryUUID",
                "memberOf"
            ]
        );
        let tool = serde_json::json!({"ldap": {"url": "ldap://h", "base": "dc=x",
            "groups_from": "member", "attributes": {"avatar": null, "username": "UID"}}});
        let dir = directory("ldap:", &tool).unwrap();
        assert_eq!(requested(&dir), ["*", "UID", "cn", "mail"]);
    }

    #[test]
    fn active_directorys_disabled_bit_and_groups() {
        let tool = serde_json::json!({"ldap": {
            "url": "ldaps://dc1:636", "base": "OU=Staff,DC=corp",
            "attributes": {"username": "sAMAccountName", "displayname": "displayName",
                           "account_control": "userAccountControl"},
            "admin_group": "CN=Matrix Admins, OU=Groups,DC=corp",
            "rooms_from_groups": {"CN=Eng,OU=Groups,DC=corp": ["#eng:hs"]},
        }});
        let dir = directory("ldap:", &tool).unwrap();
        let fields = |e: &ldap3::SearchEntry| {
            let mut photos = Photos {
                dir: None,
                written: HashSet::new(),
            };
            row_of(e, &dir, None, &mut photos).fields
        };
        let on = entry(
            "CN=Ann,OU=Staff,DC=corp",
            &[
                ("sAMAccountName", &["ann"]),
                ("userAccountControl", &["512"]),
                (
                    "memberOf",
                    &[
                        "cn=matrix admins,ou=groups,dc=corp",
                        "CN=Eng,OU=Groups,DC=corp",
                    ],
                ),
            ],
        );
        let f = fields(&on).unwrap();
        assert_eq!(
            (f.active, f.admin, f.rooms.clone(), f.displayname.clone()),
            (
                Some(true),
                Some(true),
                Some(vec!["#eng:hs".to_string()]),
                Some(String::new())
            )
        );
        // mail is mapped by default: an entry without it has no addresses.
        assert_eq!(f.emails, Some(vec![]));
        let off = entry(
            "CN=Bo,OU=Staff,DC=corp",
            &[
                ("sAMAccountName", &["bo"]),
                ("userAccountControl", &["514"]),
            ],
        );
        let f = fields(&off).unwrap();
        assert_eq!(
            (f.active, f.admin, f.rooms),
            (Some(false), Some(false), Some(vec![]))
        );
        let broken = entry("CN=Cy,OU=Staff,DC=corp", &[("sAMAccountName", &["cy"])]);
        assert!(fields(&broken).is_err());
        let nameless = entry(
            "CN=Di,OU=Staff,DC=corp",
            &[("userAccountControl", &["512"])],
        );
        assert!(fields(&nameless).is_err());
    }
}
