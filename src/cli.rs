//! The command line: first every flag of Synapse's `register_new_matrix_user`,
//! spelled and grouped as it spells and groups them, then this tool's
//! extensions.

use clap::{ArgAction, ArgGroup, Parser};
use std::path::PathBuf;

const ABOUT: &str = "Register a new user on a Matrix homeserver through the shared-secret \
admin API (/_synapse/admin/v1/register). Works where public registration is off; the \
homeserver needs `registration_shared_secret` (or `registration_shared_secret_path`) set.";

const AFTER_HELP: &str = "\
Exit status:
  0  the user was registered (or already existed, with --exists-ok); with --batch, every row
  1  the registration failed: bad input, bad config, server error or refusal; with --batch,
     any row that did not end registered (an incomplete row too: run the same command again)
  2  the command line could not be parsed, or a config file could not be opened
  3  the account was created, but a step after that failed (see the message)
  4  --plan: something would be created or changed (0: nothing would)

Give the password without putting it in argv:
  printf %s \"$pw\" | register_new_matrix_user -u alice --password-file - -c homeserver.yaml";

#[derive(Debug, Clone, Parser)]
#[command(
    name = "register_new_matrix_user",
    version,
    about = ABOUT,
    after_help = AFTER_HELP,
    args_override_self = true,
    infer_long_args = true,
    group(ArgGroup::new("secret_source").required(true).args(["config", "shared_secret", "shared_secret_file"])),
    group(ArgGroup::new("password_source").args(["password", "password_file"])),
    group(ArgGroup::new("admin_choice").args(["admin", "no_admin"])),
)]
pub struct Cli {
    /// Local part of the new user. Prompted for when omitted (the default offered is your login
    /// name).
    #[arg(short = 'u', long = "user", value_name = "USER")]
    pub user: Option<String>,

    /// Succeed without changes when the user already exists.
    #[arg(long = "exists-ok")]
    pub exists_ok: bool,

    /// Password of the new user. Prompted for when neither this nor --password-file is given.
    /// Visible to other local users in the process list: prefer --password-file.
    #[arg(short = 'p', long = "password", value_name = "PASSWORD")]
    pub password: Option<String>,

    /// Read the password from FILE (surrounding whitespace is stripped); `-` reads standard input.
    #[arg(long = "password-file", value_name = "FILE")]
    pub password_file: Option<PathBuf>,

    /// User type, such as `bot` or `support` (or one the server's config adds); --user-type
    /// works too.
    #[arg(
        short = 't',
        long = "user_type",
        visible_alias = "user-type",
        value_name = "TYPE"
    )]
    pub user_type: Option<String>,

    /// Make the new user a server admin. Prompted for when neither this nor --no-admin is given.
    #[arg(short = 'a', long = "admin")]
    pub admin: bool,

    /// Make the new user a regular user. Prompted for when neither this nor --admin is given.
    #[arg(long = "no-admin")]
    pub no_admin: bool,

    /// Homeserver config file to read the shared secret (and listener) from, or a directory
    /// whose *.yaml files are read in sorted order, as Synapse's own -c does. Repeatable:
    /// top-level keys of later files replace those of earlier ones.
    #[arg(short = 'c', long = "config", value_name = "FILE|DIR", action = ArgAction::Append)]
    pub config: Vec<PathBuf>,

    /// The registration shared secret, as in the homeserver's config.
    /// Visible in the process list: prefer --shared-secret-file or -c.
    #[arg(short = 'k', long = "shared-secret", value_name = "SECRET")]
    pub shared_secret: Option<String>,

    /// [extension] Read the shared secret from FILE (surrounding whitespace is stripped).
    #[arg(long = "shared-secret-file", value_name = "FILE")]
    pub shared_secret_file: Option<PathBuf>,

    /// [extension] Register the password even if it breaks the password_config.policy of the
    /// homeserver config given with -c (which the server does not check on this endpoint).
    #[arg(long = "ignore-password-policy")]
    pub ignore_password_policy: bool,

    /// [extension] Display name of the new user.
    #[arg(long = "displayname", value_name = "NAME")]
    pub displayname: Option<String>,

    /// [extension] Say more on standard error (repeat for more detail). Secrets are never shown.
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    pub verbose: u8,

    /// [extension] Say nothing but errors.
    #[arg(short = 'q', long = "quiet", conflicts_with = "verbose")]
    pub quiet: bool,

    /// [extension] Run the Lua hook FILE between the pipeline's stages (repeatable; run in the
    /// order given, before hooks listed in the config). See docs/hooks.md.
    #[arg(long = "hook", value_name = "FILE", action = ArgAction::Append, help_heading = "Hooks")]
    pub hooks: Vec<PathBuf>,

    /// [extension] Give hooks the full Lua standard library (os.execute, io, debug, C modules).
    #[arg(long = "hook-unsafe", help_heading = "Hooks")]
    pub hook_unsafe: bool,

    /// [extension] The longest one hook call may run, in seconds.
    #[arg(long = "hook-timeout", value_name = "SECS", default_value = "5", value_parser = parse_secs, help_heading = "Hooks")]
    pub hook_timeout: std::time::Duration,

    /// [extension] The most memory the hooks' Lua state may use, in MiB.
    #[arg(long = "hook-memory", value_name = "MIB", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096), help_heading = "Hooks")]
    pub hook_memory: u64,

    /// [extension] Run every stage up to signing, with hooks, and print the request that would
    /// be sent (password and MAC masked). Contacts no server and registers nobody.
    #[arg(long = "dry-run", help_heading = "Hooks")]
    pub dry_run: bool,

    /// [extension] How often a registration is tried again (its nonce and register calls
    /// share this one budget) after a 5xx answer, a dropped connection or an expired nonce;
    /// every other request (admin API, logins, hooks' requests) has a budget of its own of the
    /// same size. Default: 0 for one registration (as the original), 10 for --batch. Rate limits
    /// are waited out besides, up to --max-wait each.
    #[arg(
        long = "retries",
        value_name = "N",
        help_heading = "Batch and machine-readable output"
    )]
    pub retries: Option<u32>,

    /// [extension] The longest one wait on the server's rate limit may be, in seconds; a server
    /// that asks for more fails the request.
    #[arg(long = "max-wait", value_name = "SECS", default_value = "600", value_parser = parse_secs, help_heading = "Batch and machine-readable output")]
    pub max_wait: std::time::Duration,

    /// [extension] The most time one registration (a batch row), its retries and waits
    /// included, may take, in seconds.
    #[arg(long = "deadline", value_name = "SECS", default_value = "3600", value_parser = parse_secs, help_heading = "Batch and machine-readable output")]
    pub deadline: std::time::Duration,

    /// [extension] Register one user per row of FILE (`-` for standard input): CSV with a header
    /// row, JSON Lines, or a YAML list. Flags given here are defaults for every row.
    #[arg(
        long = "batch",
        value_name = "FILE",
        conflicts_with = "user",
        help_heading = "Batch and machine-readable output"
    )]
    pub batch: Option<PathBuf>,

    /// [extension] The batch file's format, when its extension does not say.
    #[arg(
        long = "batch-format",
        value_name = "FORMAT",
        requires = "batch",
        help_heading = "Batch and machine-readable output"
    )]
    pub batch_format: Option<crate::options::Format>,

    /// [extension] How many rows of a batch run at once.
    #[arg(long = "jobs", short = 'j', value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256), help_heading = "Batch and machine-readable output")]
    pub jobs: u16,

    /// [extension] Append one JSON result per batch row to FILE (mode 0600); running again with the
    /// same FILE resumes the batch.
    #[arg(
        long = "output",
        short = 'o',
        value_name = "FILE",
        requires = "batch",
        help_heading = "Batch and machine-readable output"
    )]
    pub output: Option<PathBuf>,

    /// [extension] Print one JSON result per registration on standard output; the usual lines go
    /// to standard error.
    #[arg(long = "json", help_heading = "Batch and machine-readable output")]
    pub json: bool,

    /// [extension] Trust the certificate authorities in FILE (PEM) besides the system's, for a
    /// homeserver with a private CA.
    #[arg(long = "cacert", value_name = "FILE", help_heading = "Transport")]
    pub cacert: Option<PathBuf>,

    /// [extension] Accept any TLS certificate (a self-signed test server). Anyone on the path can
    /// then read the shared secret's MAC and the password.
    #[arg(long = "insecure", help_heading = "Transport")]
    pub insecure: bool,

    /// [extension] The longest one request may take, in seconds.
    #[arg(long = "timeout", value_name = "SECS", default_value = "30", value_parser = parse_secs, help_heading = "Transport")]
    pub timeout: std::time::Duration,

    /// [extension] The access token of a server admin, in FILE (surrounding whitespace is
    /// stripped), for --ensure, --plan and --rollback. The config section may give
    /// `admin_token_path` instead.
    #[arg(
        long = "admin-token-file",
        value_name = "FILE",
        help_heading = "Desired state"
    )]
    pub admin_token_file: Option<PathBuf>,

    /// [extension] The Matrix Authentication Service's base URL, for a homeserver that delegates
    /// authentication to it (MSC3861). Default: the issuer the homeserver names.
    #[arg(
        long = "mas-url",
        value_name = "URL",
        help_heading = "MAS-backed servers"
    )]
    pub mas_url: Option<String>,

    /// [extension] The MAS client (a ULID) whose credentials get an Admin API token
    /// (client_credentials grant, scope urn:mas:admin). With it, registrations go through MAS.
    #[arg(
        long = "mas-client-id",
        value_name = "ID",
        help_heading = "MAS-backed servers"
    )]
    pub mas_client_id: Option<String>,

    /// [extension] The MAS client's secret, in FILE (surrounding whitespace is stripped).
    #[arg(
        long = "mas-client-secret-file",
        value_name = "FILE",
        help_heading = "MAS-backed servers"
    )]
    pub mas_client_secret_file: Option<PathBuf>,

    /// [extension] MAS's own config file: the Admin API's address (http.public_base), the first
    /// client with a secret, passwords.minimum_complexity and matrix.homeserver come from it.
    #[arg(
        long = "mas-config",
        value_name = "FILE",
        help_heading = "MAS-backed servers"
    )]
    pub mas_config: Option<PathBuf>,

    /// [extension] Create the user when missing; otherwise bring the existing account to what the
    /// flags or the batch row say (admin, user type, display name, emails, avatar, rooms,
    /// active), leaving everything they do not give alone. Needs an admin token.
    #[arg(long = "ensure", help_heading = "Desired state")]
    pub ensure: bool,

    /// [extension] With --ensure or --rollback: read the server and print what would be created
    /// or changed, changing nothing. Exit status 4 when something would change.
    #[arg(long = "plan", help_heading = "Desired state")]
    pub plan: bool,

    /// [extension] Deactivate every account the results file RESULTS records as created by its
    /// runs (accounts that existed before are left alone). Asks first; --yes without a terminal.
    #[arg(
        long = "rollback",
        value_name = "RESULTS",
        conflicts_with_all = ["batch", "user", "ensure"],
        help_heading = "Desired state"
    )]
    pub rollback: Option<PathBuf>,

    /// [extension] With --rollback: also ask the server to erase the accounts (their messages
    /// are hidden from new members, their profile removed).
    #[arg(long = "erase", requires = "rollback", help_heading = "Desired state")]
    pub erase: bool,

    /// [extension] With --rollback: do not ask.
    #[arg(long = "yes", requires = "rollback", help_heading = "Desired state")]
    pub yes: bool,

    /// [extension] With --ensure: reactivate accounts whose data was erased (`active: true` on
    /// one is refused otherwise, as its display name, avatar and rooms are gone).
    #[arg(
        long = "erased-ok",
        requires = "ensure",
        help_heading = "Desired state"
    )]
    pub erased_ok: bool,

    /// [extension] Write every local account of the server as an inventory to FILE (its
    /// extension names the format: .jsonl, .csv, .yaml; `-` is JSON Lines on standard output),
    /// which --ensure --batch FILE then manages. Needs an admin token; never writes a password.
    #[arg(
        long = "export",
        value_name = "FILE",
        conflicts_with_all = ["batch", "user", "ensure", "rollback", "plan", "dry_run"],
        help_heading = "Server as state"
    )]
    pub export: Option<PathBuf>,

    /// [extension] With --export: include guest accounts.
    #[arg(
        long = "export-guests",
        requires = "export",
        help_heading = "Server as state"
    )]
    pub export_guests: bool,

    /// [extension] With --ensure --batch: deactivate (or, with --prune=lock, lock) every local
    /// account the inventory does not name, after its rows. Never the admin token's own,
    /// application services', guests', deactivated or --keep accounts; prunes nobody when the
    /// inventory did not read whole, or when it would prune more than --prune-max or a third of
    /// the active accounts (exit status 5).
    #[arg(
        long = "prune",
        value_name = "HOW",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "deactivate",
        requires_all = ["ensure", "batch"],
        help_heading = "Server as state"
    )]
    pub prune: Option<crate::options::Prune>,

    /// [extension] With --prune: an account never pruned: a user ID, a localpart, or a glob of
    /// either with * and ? (repeatable; the config section's prune_keep adds more).
    #[arg(long = "keep", value_name = "USER_OR_GLOB", action = ArgAction::Append, requires = "prune", help_heading = "Server as state")]
    pub keep: Vec<String>,

    /// [extension] With --prune: the most accounts one run prunes; a run that would prune more
    /// (or more than a third of the active accounts) prunes nobody.
    #[arg(
        long = "prune-max",
        value_name = "N",
        default_value_t = 10,
        requires = "prune",
        help_heading = "Server as state"
    )]
    pub prune_max: u64,

    /// [extension] With --ensure: the user's avatar, an mxc:// URI or a local image file
    /// (uploaded once).
    #[arg(
        long = "avatar",
        value_name = "MXC|FILE",
        requires = "ensure",
        help_heading = "Desired state"
    )]
    pub avatar: Option<String>,

    /// [extension] With --ensure: a room, space or alias the user must have joined (repeatable).
    /// Nobody is made to leave a room.
    #[arg(long = "room", value_name = "ROOM", action = ArgAction::Append, requires = "ensure", help_heading = "Desired state")]
    pub rooms: Vec<String>,

    /// [extension] With --ensure: an email address of the user (repeatable): the exact set.
    #[arg(long = "email", value_name = "ADDRESS", action = ArgAction::Append, requires = "ensure", help_heading = "Desired state")]
    pub emails: Vec<String>,

    /// [extension] Print a man page (`man`) or a shell completion script (`bash`, `zsh`,
    /// `fish`) made from these flags, and exit.
    #[arg(
        long = "generate",
        value_name = "KIND",
        exclusive = true,
        help_heading = "Packaging"
    )]
    pub generate: Option<Generate>,

    /// URL of the homeserver. Default: the first plain-HTTP client listener in the
    /// config file, else http://localhost:8008.
    #[arg(value_name = "server_url")]
    pub server_url: Option<String>,
}

impl Cli {
    /// What the layers below the command line read.
    pub fn options(&self) -> crate::options::Options {
        crate::options::Options {
            user: self.user.clone(),
            exists_ok: self.exists_ok,
            password: self.password.clone(),
            password_file: self.password_file.clone(),
            user_type: self.user_type.clone(),
            admin: match (self.admin, self.no_admin) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            },
            config: self.config.clone(),
            shared_secret: self.shared_secret.clone(),
            shared_secret_file: self.shared_secret_file.clone(),
            ignore_password_policy: self.ignore_password_policy,
            displayname: self.displayname.clone(),
            hooks: self.hooks.clone(),
            hook_unsafe: self.hook_unsafe,
            hook_timeout: self.hook_timeout,
            hook_memory: self.hook_memory,
            dry_run: self.dry_run,
            retries: self.retries,
            max_wait: self.max_wait,
            deadline: self.deadline,
            batch: self.batch.clone(),
            batch_format: self.batch_format,
            jobs: self.jobs,
            output: self.output.clone(),
            json: self.json,
            cacert: self.cacert.clone(),
            insecure: self.insecure,
            timeout: self.timeout,
            server_url: self.server_url.clone(),
            admin_token_file: self.admin_token_file.clone(),
            mas_url: self.mas_url.clone(),
            mas_client_id: self.mas_client_id.clone(),
            mas_client_secret_file: self.mas_client_secret_file.clone(),
            mas_config: self.mas_config.clone(),
            ensure: self.ensure,
            plan: self.plan,
            rollback: self.rollback.clone(),
            erase: self.erase,
            yes: self.yes,
            erased_ok: self.erased_ok,
            export: self.export.clone(),
            export_guests: self.export_guests,
            prune: self.prune,
            keep: self.keep.clone(),
            prune_max: self.prune_max,
            avatar: self.avatar.clone(),
            rooms: self.rooms.clone(),
            emails: self.emails.clone(),
        }
    }
}

/// What `--generate` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Generate {
    Man,
    Bash,
    Zsh,
    Fish,
}

/// The man page or completion script for this command line, for the
/// command installed as `name` (a package installs it under its own).
/// The command line, parsed for the command run as `name`: its usage and
/// errors say that name.
pub fn parse(args: Vec<std::ffi::OsString>, name: &str) -> Result<Cli, clap::Error> {
    use clap::{CommandFactory, FromArgMatches};
    let mut cmd = named(Cli::command(), name);
    // Through MAS there is no shared secret: MAS's client credentials stand
    // for it.
    let for_mas = args.iter().any(|a| {
        let a = a.to_string_lossy();
        [
            "--mas-client-id",
            "--mas-client-secret-file",
            "--mas-config",
        ]
        .iter()
        .any(|f| a == *f || a.starts_with(&format!("{f}=")))
    });
    if for_mas {
        cmd = cmd.mut_group("secret_source", |g| g.required(false));
    }
    let matches = cmd.try_get_matches_from_mut(args)?;
    Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))
}

fn named(cmd: clap::Command, name: &str) -> clap::Command {
    // Once or twice a run: the name lives as long as the process.
    let name: &'static str = Box::leak(name.to_string().into_boxed_str());
    cmd.name(name).bin_name(name).display_name(name)
}

pub fn generate(kind: Generate, name: &str, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    use clap::CommandFactory;
    let mut cmd = named(Cli::command(), name);
    let name = name.to_string();
    match kind {
        Generate::Man => clap_mangen::Man::new(cmd).render(out),
        Generate::Bash => {
            clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, name, out);
            Ok(())
        }
        Generate::Zsh => {
            clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, name, out);
            Ok(())
        }
        Generate::Fish => {
            clap_complete::generate(clap_complete::Shell::Fish, &mut cmd, name, out);
            Ok(())
        }
    }
}

/// The long flags of Synapse's script, which takes any unambiguous prefix of
/// them.
const ORIGINAL_LONG: [&str; 9] = [
    "--user",
    "--password",
    "--password-file",
    "--user_type",
    "--admin",
    "--no-admin",
    "--config",
    "--shared-secret",
    "--exists-ok",
];

/// The command line with every long-flag prefix that named one of the
/// original's flags unambiguously there spelled out, so that an extension
/// (`--shared-secret-file`) never takes a prefix (`--shared`) away from an
/// original flag. Everything else is left to clap, which also takes
/// unambiguous prefixes of the extensions.
pub fn expand_original_prefixes(
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Vec<std::ffi::OsString> {
    let mut out = Vec::new();
    let mut rest = false;
    for arg in args {
        let expanded = (!rest)
            .then(|| arg.to_str())
            .flatten()
            .filter(|a| a.starts_with("--") && a.len() > 2)
            .and_then(|a| {
                let (name, value) = match a.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (a, None),
                };
                if ORIGINAL_LONG.contains(&name) {
                    return None;
                }
                let mut hits = ORIGINAL_LONG.iter().filter(|f| f.starts_with(name));
                let (Some(full), None) = (hits.next(), hits.next()) else {
                    return None;
                };
                Some(match value {
                    Some(v) => format!("{full}={v}"),
                    None => full.to_string(),
                })
            });
        if arg == "--" {
            rest = true;
        }
        out.push(expanded.map_or(arg, Into::into));
    }
    out
}

/// Seconds as a positive decimal number.
pub fn parse_secs(s: &str) -> Result<std::time::Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= 86_400.0) {
        return Err(format!("{s} is not between 0 and 86400 seconds"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let argv = std::iter::once("register_new_matrix_user")
            .chain(args.iter().copied())
            .map(std::ffi::OsString::from);
        Cli::try_parse_from(expand_original_prefixes(argv))
    }

    /// docs/flags.md, "Prefixes": the original's flags keep every prefix
    /// that names one of them; an extension takes a prefix only it has.
    #[test]
    fn prefixes_are_the_originals_first_then_unambiguous() {
        let c = parse(&["--e", "-k", "s", "--dry-run", "-u", "a", "-p", "b"]).unwrap();
        assert!(c.exists_ok && !c.ensure && !c.erase);
        assert!(parse(&["--shared", "s", "-u", "a", "-p", "b", "--dry-run"]).is_ok());
        let c = parse(&["--ens", "-k", "s", "-u", "a", "--em", "a@b.c"]).unwrap();
        assert!(c.ensure && c.emails == ["a@b.c"] && !c.exists_ok);
        for ambiguous in ["--pa", "--pr"] {
            let e = parse(&[ambiguous, "x", "-k", "s"]).map(|_| ()).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{ambiguous}: {e}");
        }
    }
}
