//! The server side of a registration, behind one interface: a backend
//! creates accounts its own way (the stages it lists), and reads, changes
//! and deactivates them for `--ensure`, `--plan` and `--rollback`.
//!
//! [`synapse`] is Synapse's: the shared-secret endpoint to create, the admin
//! API for the rest. [`mas`] is for homeservers that delegate authentication
//! to the Matrix Authentication Service: its Admin API does everything. A
//! server kind is one module here, with its own stages.

pub mod avatar;
pub mod mas;
pub mod synapse;

use crate::error::HsError;
use crate::record::Stage;
use crate::state::{Account, Changes};

pub use crate::options::Mode;

/// The stages a record runs through in `mode`, the config stage first, on
/// Synapse (the config stage, first in every list, says which kind of
/// server a run has: [`stages_for`]).
pub fn stages(mode: Mode) -> &'static [Stage] {
    synapse::Synapse::stages_without_token(mode)
}

/// The stages on a server that delegates to MAS (`mas`) or on Synapse.
pub fn stages_for(mas: bool, mode: Mode) -> &'static [Stage] {
    if mas { mas::stages(mode) } else { stages(mode) }
}

/// One kind of server.
pub trait Backend {
    /// The stages a record runs through, the config stage first.
    fn stages(&self, mode: Mode) -> &'static [Stage];

    /// The account `user_id`, or `None` when it does not exist.
    fn lookup(&self, user_id: &str) -> Result<Option<Account>, HsError>;

    /// One page of the server's local accounts, deactivated ones and
    /// guests too, from `from` (`None`: the first page).
    fn list(&self, from: Option<&str>) -> Result<crate::state::Page, HsError>;

    /// A room's canonical alias, when it has one.
    fn canonical_alias(&self, room_id: &str) -> Result<Option<String>, HsError>;

    /// The room ID a room or alias names (`None`: none yet).
    fn room_id(&self, room: &str) -> Result<Option<String>, HsError>;

    /// Whether the local image file `path` is the account's avatar already.
    fn same_avatar(&self, account: &Account, path: &str) -> Result<bool, Failure>;

    /// Who has the email address `address` (`None`: nobody); `user_id` is
    /// the account it is for.
    fn email_owner(&self, user_id: &str, address: &str) -> Result<Option<String>, Failure>;

    /// Who has the external ID `value` (`auth_provider:external_id`;
    /// `None`: nobody); `user_id` is the account it is for.
    fn external_id_owner(&self, user_id: &str, value: &str) -> Result<Option<String>, Failure>;

    /// Reactivates a deactivated account, giving it `password` when one
    /// is to log in.
    fn reactivate(
        &self,
        user_id: &str,
        password: Option<&crate::secret::Secret>,
    ) -> Result<(), Failure>;

    /// Makes `changes`, field by field; `created`: the account was just
    /// registered, with the fields registration sets already set. A change
    /// of `erase` goes with deactivation.
    fn apply(&self, user_id: &str, changes: &Changes, created: bool) -> Result<(), Failure>;

    /// Deactivates the account (and erases it when asked).
    fn deactivate(&self, user_id: &str, erase: bool) -> Result<(), HsError>;
}

/// A change that could not be made: which, and why.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {cause}")]
pub struct Failure {
    pub what: String,
    pub cause: String,
}

impl Failure {
    pub fn new(what: impl Into<String>, cause: impl ToString) -> Self {
        Failure {
            what: what.into(),
            cause: cause.to_string(),
        }
    }
}
