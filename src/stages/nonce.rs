//! Fetch nonce: ask the server for a fresh single-use nonce (a dry run uses a
//! placeholder and asks nobody).

use crate::error::Error;
use crate::pipeline::{Ctx, Record};

/// The nonce a dry run signs with: no request is made.
pub const DRY_RUN_NONCE: &str = "dry-run";

pub fn run(rec: &mut Record, ctx: &mut Ctx<'_>) -> Result<(), Error> {
    if ctx.dry_run {
        rec.nonce = Some(DRY_RUN_NONCE.to_string());
        return Ok(());
    }
    let hs = ctx.server(rec)?;
    let nonce = hs.nonce()?;
    ctx.console
        .debug(&format!("got a nonce from {}", hs.base_url()));
    rec.nonce = Some(nonce);
    Ok(())
}
