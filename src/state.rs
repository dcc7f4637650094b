//! Accounts as desired state: what the server has ([`Account`]), what the
//! input asks for ([`Desired`]), and the changes between them
//! ([`Changes`]), which `--plan` prints and the apply stage makes.
//!
//! Only the fields the input gives are managed; a field it leaves out is
//! never compared, never changed.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The fields `--ensure` manages, in the order they are shown.
pub const FIELDS: [&str; 9] = [
    "admin",
    "user_type",
    "displayname",
    "emails",
    "external_ids",
    "avatar",
    "rooms",
    "locked",
    "active",
];

/// The fields the registration itself sets, so a new account needs no
/// second request for them.
pub const SET_AT_REGISTRATION: [&str; 3] = ["admin", "user_type", "displayname"];

/// An account as the server has it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub user_id: String,
    pub admin: bool,
    pub user_type: Option<String>,
    pub displayname: Option<String>,
    /// Email addresses, lowercased and sorted.
    pub emails: Vec<String>,
    /// `avatar_url`.
    pub avatar: Option<String>,
    /// The rooms the account has joined, by ID.
    pub rooms: Vec<String>,
    pub active: bool,
    /// Locked: it cannot log in, and keeps its data.
    #[serde(default)]
    pub locked: bool,
    /// SSO identities linked to it, as `auth_provider:external_id`, sorted.
    #[serde(default)]
    pub external_ids: Vec<String>,
    /// Its data was erased when it was deactivated.
    #[serde(default)]
    pub erased: bool,
    /// The application service that owns it, if one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appservice_id: Option<String>,
    /// A guest account.
    #[serde(default)]
    pub guest: bool,
    /// Third-party IDs other than email (phone numbers): kept as they are
    /// when the emails change, since the server replaces the whole list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_threepids: Vec<Value>,
}

/// An account as the server's list of accounts shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub user_id: String,
    pub guest: bool,
    pub deactivated: bool,
    pub locked: bool,
}

/// One page of the server's list of accounts.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub users: Vec<Listed>,
    /// Where the next page starts (`None`: this is the last).
    pub next: Option<String>,
    /// How many accounts the whole list holds, when the server says.
    pub total: Option<u64>,
}

/// What the input asks of an account. `None` (or an absent list): not managed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Desired {
    pub admin: Option<bool>,
    pub user_type: Option<String>,
    pub displayname: Option<String>,
    pub emails: Option<Vec<String>>,
    pub avatar: Option<String>,
    /// The rooms as given (IDs or aliases), each with the room ID it names
    /// (`None` when an alias names no room yet).
    pub rooms: Option<Vec<(String, Option<String>)>>,
    pub locked: Option<bool>,
    pub active: Option<bool>,
    /// `auth_provider:external_id` values.
    pub external_ids: Option<Vec<String>>,
}

/// One field's change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    #[serde(default)]
    pub from: Value,
    #[serde(default)]
    pub to: Value,
}

/// Field name to change, for the fields that would change.
pub type Changes = BTreeMap<String, Change>;

/// An email address as Synapse keeps it: surrounding white space dropped,
/// the localpart case-folded (`Straße` keeps as `strasse`) and the domain
/// lowercased. Something that is not one `@` between two parts is only
/// lowercased (validation refuses it before anything is sent).
pub fn canonical_email(address: &str) -> String {
    let address = python_strip(address);
    let mut parts = address.split('@');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(local), Some(domain), None) => format!(
            "{}@{}",
            caseless::default_case_fold_str(local),
            domain.to_lowercase()
        ),
        _ => address.to_lowercase(),
    }
}

/// A display name as Synapse keeps it: surrounding white space dropped, and
/// an empty one as none.
pub fn canonical_displayname(name: &str) -> Option<String> {
    let name = python_strip(name);
    (!name.is_empty()).then(|| name.to_string())
}

/// `str.strip()` as Python does it: white space by Python's own rule, which
/// counts the separators U+001C to U+001F as white space too.
fn python_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

/// The changes that bring `account` (`None`: it does not exist yet) to
/// `want`. `avatar_same` says whether a local avatar file is the account's
/// avatar already (the caller compares their hashes).
pub fn plan(want: &Desired, account: Option<&Account>, avatar_same: bool) -> Changes {
    let mut out = Changes::new();
    let mut put = |field: &str, from: Value, to: Value| {
        if from != to {
            out.insert(field.to_string(), Change { from, to });
        }
    };
    let none = Account {
        active: true,
        ..Account::default()
    };
    let exists = account.is_some();
    let have = account.unwrap_or(&none);
    if let Some(a) = want.admin {
        // A new account is not an admin unless asked: shown only when asked.
        if exists || a {
            put("admin", json!(have.admin), json!(a));
        }
    }
    if let Some(t) = &want.user_type {
        put("user_type", json!(have.user_type), json!(t));
    }
    if let Some(d) = &want.displayname {
        let from = if exists {
            json!(have.displayname)
        } else {
            Value::Null
        };
        put("displayname", from, json!(canonical_displayname(d)));
    }
    if let Some(e) = &want.emails {
        let mut to: Vec<String> = e.iter().map(|a| canonical_email(a)).collect();
        to.sort();
        to.dedup();
        put("emails", json!(have.emails), json!(to));
    }
    if let Some(ids) = &want.external_ids {
        let mut to = ids.clone();
        to.sort();
        to.dedup();
        put("external_ids", json!(have.external_ids), json!(to));
    }
    if let Some(a) = &want.avatar {
        if !(avatar_same || have.avatar.as_deref() == Some(a.as_str())) {
            put("avatar", json!(have.avatar), json!(a));
        }
    }
    if let Some(rooms) = &want.rooms {
        let joined: Vec<&String> = rooms
            .iter()
            .filter(|(_, id)| id.as_ref().is_some_and(|id| have.rooms.contains(id)))
            .map(|(given, _)| given)
            .collect();
        let all: Vec<&String> = rooms.iter().map(|(given, _)| given).collect();
        put("rooms", json!(joined), json!(all));
    }
    if let Some(l) = want.locked {
        // A new account is not locked unless asked: shown only when asked.
        if exists || l {
            put("locked", json!(have.locked), json!(l));
        }
    }
    if let Some(a) = want.active {
        // A missing account that is to be inactive is simply not created.
        if exists {
            put("active", json!(have.active), json!(a));
        }
    }
    out
}

/// A field's change in words: `admin no -> yes`, `rooms +#a:hs`.
pub fn describe(field: &str, c: &Change) -> String {
    fn shown(v: &Value) -> String {
        match v {
            Value::Null => "none".into(),
            Value::Bool(true) => "yes".into(),
            Value::Bool(false) => "no".into(),
            Value::String(s) => quoted(s),
            Value::Array(a) if a.is_empty() => "[]".into(),
            Value::Array(a) => format!(
                "[{}]",
                a.iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            other => other.to_string(),
        }
    }
    if field == "rooms" {
        let add: Vec<String> = added(c).iter().map(|r| format!("+{r}")).collect();
        return format!("rooms {}", add.join(" "));
    }
    format!("{field} {} -> {}", shown(&c.from), shown(&c.to))
}

/// Text as it is, in double quotes, so that a space or a quote in it stays
/// unambiguous: only `"`, `\\` and control characters are escaped.
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The localpart of a user ID (`@alice:hs` is `alice`); anything else as
/// it is.
pub fn localpart(user_id: &str) -> &str {
    let s = user_id.strip_prefix('@').unwrap_or(user_id);
    s.split_once(':').map_or(s, |(l, _)| l)
}

/// An external ID as `auth_provider:external_id`, split at its first `:`
/// (a provider's ID has none).
pub fn split_external_id(value: &str) -> Option<(&str, &str)> {
    value
        .split_once(':')
        .filter(|(p, id)| !p.is_empty() && !id.is_empty())
}

/// The values of a list change's `to` that its `from` lacks: the rooms a
/// change of `rooms` still has to join, the addresses or IDs to add.
pub fn added(c: &Change) -> Vec<String> {
    let had: Vec<&Value> = c
        .from
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    c.to.as_array()
        .map(|a| {
            a.iter()
                .filter(|r| !had.contains(r))
                .filter_map(|r| r.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Account {
        Account {
            user_id: "@alice:hs".into(),
            displayname: Some("Alice".into()),
            emails: vec!["a@x.org".into()],
            rooms: vec!["!r:hs".into()],
            active: true,
            ..Account::default()
        }
    }

    #[test]
    fn only_what_is_given_is_compared() {
        assert!(plan(&Desired::default(), Some(&alice()), false).is_empty());
        let want = Desired {
            admin: Some(true),
            displayname: Some("Alice".into()),
            emails: Some(vec!["A@x.org ".into()]),
            rooms: Some(vec![
                ("#r:hs".into(), Some("!r:hs".into())),
                ("#new:hs".into(), Some("!n:hs".into())),
            ]),
            ..Desired::default()
        };
        let c = plan(&want, Some(&alice()), false);
        assert_eq!(c.keys().collect::<Vec<_>>(), ["admin", "rooms"]);
        assert_eq!(describe("admin", &c["admin"]), "admin no -> yes");
        assert_eq!(describe("rooms", &c["rooms"]), "rooms +#new:hs");
        assert_eq!(added(&c["rooms"]), ["#new:hs"]);
    }

    #[test]
    fn names_are_shown_as_they_are() {
        let c = Change {
            from: Value::Null,
            to: json!("Olúwásẹ̀yí \"Ade\"\n"),
        };
        assert_eq!(
            describe("displayname", &c),
            "displayname none -> \"Olúwásẹ̀yí \\\"Ade\\\"\\n\""
        );
    }

    #[test]
    fn values_compare_as_synapse_keeps_them() {
        assert_eq!(
            canonical_email(" Straße@Example.ORG "),
            "strasse@example.org"
        );
        assert_eq!(canonical_displayname("  "), None);
        assert_eq!(canonical_displayname(" Al "), Some("Al".into()));
        let have = Account {
            displayname: None,
            emails: vec!["strasse@example.org".into()],
            active: true,
            ..Account::default()
        };
        let want = Desired {
            displayname: Some(String::new()),
            emails: Some(vec!["Straße@Example.org".into()]),
            ..Desired::default()
        };
        assert!(plan(&want, Some(&have), false).is_empty());
    }

    #[test]
    fn a_new_account_shows_what_it_gets() {
        let want = Desired {
            admin: Some(false),
            displayname: Some("Bob".into()),
            active: Some(true),
            ..Desired::default()
        };
        let c = plan(&want, None, false);
        assert_eq!(c.keys().collect::<Vec<_>>(), ["displayname"]);
    }
}
