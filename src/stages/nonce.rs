//! Fetch nonce: ask the server for a fresh single-use nonce (a dry run uses a
//! placeholder and asks nobody).

use super::answer::explain;
use crate::error::Error;
use crate::record::Record;
use crate::stages::Ctx;

/// The nonce a dry run signs with: no request is made.
pub const DRY_RUN_NONCE: &str = "dry-run";

pub fn run(rec: &mut Record, ctx: &mut Ctx<'_>) -> Result<(), Error> {
    if ctx.dry_run {
        rec.nonce = Some(DRY_RUN_NONCE.to_string());
        return Ok(());
    }
    let hs = ctx.server(rec)?;
    ctx.console.debug(&format!(
        "GET {}{}",
        hs.base_url(),
        crate::homeserver::REGISTER_PATH
    ));
    match hs.nonce() {
        Ok(nonce) => {
            rec.nonce = Some(nonce);
            Ok(())
        }
        Err(e) => Err(explain(e, &hs, rec)),
    }
}
