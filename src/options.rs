//! What one invocation asks for, as the layers below the command line see
//! it: the command line's values, parsed and checked, without clap's
//! vocabulary. [`crate::cli`] builds one; the stages, the runner and batch
//! read it.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The format of a batch file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Jsonl,
    Yaml,
}

impl Format {
    /// The format a file name's extension names.
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" | "json" => Some(Format::Jsonl),
            "yaml" | "yml" => Some(Format::Yaml),
            _ => None,
        }
    }
}

/// The invocation's options. Field meanings are those of the flags of the
/// same names (`--help`).
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub user: Option<String>,
    pub exists_ok: bool,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    pub user_type: Option<String>,
    /// `--admin` (true), `--no-admin` (false), or neither.
    pub admin: Option<bool>,
    pub config: Vec<PathBuf>,
    pub shared_secret: Option<String>,
    pub shared_secret_file: Option<PathBuf>,
    pub ignore_password_policy: bool,
    pub displayname: Option<String>,
    pub hooks: Vec<PathBuf>,
    pub hook_unsafe: bool,
    pub hook_timeout: Duration,
    pub hook_memory: u64,
    pub dry_run: bool,
    pub retries: Option<u32>,
    pub max_wait: Duration,
    pub deadline: Duration,
    pub batch: Option<PathBuf>,
    pub batch_format: Option<Format>,
    pub jobs: u16,
    pub output: Option<PathBuf>,
    pub json: bool,
    pub cacert: Option<PathBuf>,
    pub insecure: bool,
    pub timeout: Duration,
    pub server_url: Option<String>,
    /// The file holding a server admin's access token.
    pub admin_token_file: Option<PathBuf>,
    /// `--mas-url`, `--mas-client-id`, `--mas-client-secret-file`, `--mas-config`.
    pub mas_url: Option<String>,
    pub mas_client_id: Option<String>,
    pub mas_client_secret_file: Option<PathBuf>,
    pub mas_config: Option<PathBuf>,
    /// Bring existing accounts to what the input says; create missing ones.
    pub ensure: bool,
    /// Say what `--ensure` or `--rollback` would do, and do nothing.
    pub plan: bool,
    /// Deactivate the accounts this results file records as created.
    pub rollback: Option<PathBuf>,
    /// Erase the accounts `--rollback` deactivates.
    pub erase: bool,
    /// Answer yes to `--rollback`'s question.
    pub yes: bool,
    /// Reactivate accounts whose data was erased.
    pub erased_ok: bool,
    /// `--export FILE`: write the server's accounts as an inventory.
    pub export: Option<PathBuf>,
    /// Export guests too.
    pub export_guests: bool,
    /// `--prune`: what is done to accounts the inventory does not name.
    pub prune: Option<Prune>,
    /// `--keep`: user IDs, localparts or globs never pruned.
    pub keep: Vec<String>,
    /// `--prune-max`: the most accounts one run prunes.
    pub prune_max: u64,
    /// `--avatar`: an `mxc://` URI or a local image file.
    pub avatar: Option<String>,
    /// `--room`: rooms the user must have joined.
    pub rooms: Vec<String>,
    /// `--email`: the user's exact set of email addresses.
    pub emails: Vec<String>,
}

/// What `--prune` does to an account the inventory does not name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Prune {
    Deactivate,
    Lock,
}

/// What a run does with each record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Create the account (the original's job).
    Register,
    /// Every stage up to the request, sending nothing.
    DryRun,
    /// Create it when missing, else bring it to what the input says.
    Ensure,
    /// Read the server and say what `Ensure` would do.
    Plan,
}

impl Mode {
    /// The mode the options ask for.
    pub fn of(o: &Options) -> Mode {
        match (o.dry_run, o.plan, o.ensure || o.rollback.is_some()) {
            (true, _, _) => Mode::DryRun,
            (_, true, _) => Mode::Plan,
            (_, _, true) => Mode::Ensure,
            _ => Mode::Register,
        }
    }
}
