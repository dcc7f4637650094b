//! Fetch nonce: ask the server for a fresh single-use nonce.

use crate::error::Error;
use crate::pipeline::{Ctx, Record};

pub fn run(rec: &mut Record, ctx: &mut Ctx<'_>) -> Result<(), Error> {
    let hs = ctx.server(rec)?;
    let nonce = hs.nonce()?;
    ctx.console
        .debug(&format!("got a nonce from {}", hs.base_url()));
    rec.nonce = Some(nonce);
    Ok(())
}
