//! Fetch nonce: ask the server for a fresh single-use nonce (a dry run uses a
//! placeholder and asks nobody).

use crate::error::Error;
use crate::homeserver::HsError;
use crate::pipeline::{Ctx, Record, Stage};
use std::time::Duration;

/// The nonce a dry run signs with: no request is made.
pub const DRY_RUN_NONCE: &str = "dry-run";

pub fn run(rec: &mut Record, ctx: &mut Ctx<'_>) -> Result<(), Error> {
    if ctx.dry_run {
        rec.nonce = Some(DRY_RUN_NONCE.to_string());
        return Ok(());
    }
    let hs = ctx.server(rec)?;
    match hs.nonce() {
        Ok(nonce) => {
            rec.nonce = Some(nonce);
            Ok(())
        }
        Err(e) => Err(retry_if_transient(e, Stage::Nonce)),
    }
}

/// A rate limit, a 5xx answer, a timeout or a connection failure is worth
/// another try from `from`; anything else is final.
pub fn retry_if_transient(e: HsError, from: Stage) -> Error {
    let wait = match &e {
        HsError::Status {
            status: 429,
            retry_after_ms,
            ..
        } => Some(Duration::from_millis(retry_after_ms.unwrap_or(1000))),
        HsError::Status { status, .. } if *status >= 500 => None,
        HsError::Connect { .. } | HsError::Timeout { .. } => None,
        _ => return e.into(),
    };
    Error::Again {
        from,
        wait,
        cause: Box::new(e.into()),
    }
}
