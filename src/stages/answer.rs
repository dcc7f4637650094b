//! What a failed request means for the pipeline, shared by the two stages
//! that talk to the register endpoint (nonce and submit): try again from the
//! nonce stage, or stop, with a hint where the cause is likely known.

use crate::error::Error;
use crate::error::{HsError, Verdict, verdict};
use crate::homeserver::Homeserver;
use crate::record::{Record, Stage};

/// Turns a failed request into the pipeline's error: `Error::Again` for what
/// is worth another try, a hinted error where the answer says why.
pub fn explain(e: HsError, hs: &Homeserver, rec: &Record) -> Error {
    let again = |e: HsError| Error::Again {
        from: Stage::Nonce,
        cause: Box::new(e),
    };
    let hinted = |e: HsError, hint: String| Error::Hinted {
        cause: Box::new(e.into()),
        hint,
    };
    match verdict(&e) {
        Verdict::RateLimited | Verdict::Transient | Verdict::StaleNonce => again(e),
        Verdict::Disabled => hinted(
            e,
            "shared-secret registration is off on this homeserver: it has no \
             registration_shared_secret (or registration_shared_secret_path) set"
                .into(),
        ),
        Verdict::NotServed if hs.delegates_auth() => hinted(
            e,
            "this homeserver delegates authentication to the Matrix Authentication Service \
             (MSC3861), which turns shared-secret registration off; register through MAS's \
             Admin API with --mas-client-id ID and --mas-client-secret-file FILE (or \
             --mas-config FILE), or with `mas-cli manage register-user`"
                .into(),
        ),
        Verdict::NotServed => hinted(
            e,
            format!(
                "{} does not serve the shared-secret registration endpoint; a reverse proxy in \
                 front of the homeserver must pass /_synapse/admin/ through",
                hs.base_url()
            ),
        ),
        Verdict::BadMac if rec.user_type.is_some() && rec.nonce.as_deref().is_some_and(|n| n.len() <= 32) => {
            hinted(
                e,
                "this server's short nonce looks like Dendrite's, and Dendrite leaves the user type \
                 out of the MAC, so it refuses typed users registered this way; register without -t"
                    .into(),
            )
        }
        _ => e.into(),
    }
}
