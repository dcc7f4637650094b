//! One module per pipeline stage, in pipeline order. Each exposes
//! `run(&mut Record, &mut Ctx) -> Result<(), Error>` and does one job.

pub mod answer;
pub mod config;
pub mod input;
pub mod nonce;
pub mod post;
pub mod sign;
pub mod submit;
pub mod validate;
