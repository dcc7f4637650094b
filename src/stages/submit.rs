//! Submit: send the signed registration and read the answer.
//!
//! What an answer means is decided on its status and `errcode` (see
//! [`crate::homeserver::verdict`]): a rate limit, an expired nonce, a 5xx or
//! a lost connection go back to the nonce stage when retries are allowed.
//! When a request may have reached the server unanswered, a later "user in
//! use" is settled by logging in with the password: if it works, the account
//! is the one this run created. Only a definite refusal of the password
//! (403 `M_FORBIDDEN`) means it is someone else's; a rate limit, a 5xx or a
//! lost answer is retried like any request, and never taken for a "no".

use super::answer::explain;
use crate::backend::mas::{self, MasBackend};
use crate::error::Error;
use crate::error::{HsError, Verdict, verdict};
use crate::homeserver::RegisterRequest;
use crate::homeserver::mas::Created;
use crate::record::{HookPoint, Outcome, Record, Stage, Undone};
use crate::stages::Ctx;

pub const USER_IN_USE: &str = "M_USER_IN_USE";

pub fn run(rec: &mut Record, ctx: &mut Ctx<'_>) -> Result<(), Error> {
    if let Some(mas) = ctx.mas()? {
        return submit_mas(rec, ctx, &mas);
    }
    let hs = ctx.server(rec)?;
    let console = ctx.console;
    let answer = {
        let req = request(rec)?;
        // Said once, as the original does, however often it is tried.
        if !rec.announced {
            console.status("Sending registration request...");
        }
        console.debug(&format!(
            "POST {}{}",
            hs.base_url(),
            crate::homeserver::REGISTER_PATH
        ));
        hs.register(&req)
    };
    rec.announced = true;
    let e = match answer {
        Ok(done) => {
            console.verbose(&format!("registered {}", done.user_id));
            if let (Some((_, server)), Ok(r)) = (done.user_id.split_once(':'), ctx.resolved()) {
                let _ = r.learned_server_name.set(server.to_string());
            }
            rec.user_id = Some(done.user_id);
            rec.access_token = done.access_token;
            rec.device_id = done.device_id;
            rec.outcome = Some(Outcome::Registered);
            rec.created_here = true;
            console.status("Success!");
            return Ok(());
        }
        Err(e) => e,
    };
    match verdict(&e) {
        Verdict::UserInUse => {
            if rec.maybe_sent && settle_by_login(rec, ctx)? {
                console.status("Success!");
                return Ok(());
            }
            if let Ok(r) = ctx.resolved() {
                if let (Some(server), Some(user)) = (r.server_name(), rec.username.as_deref()) {
                    rec.user_id = Some(format!("@{}:{server}", user.trim().to_lowercase()));
                }
            }
            if ctx.opts.exists_ok {
                rec.outcome = Some(Outcome::Exists);
                console.status("User already exists. Skipping.");
                return Ok(());
            }
            Err(e.into())
        }
        Verdict::Transient => {
            // The request may have reached the server; its answer did not reach us.
            rec.maybe_sent = true;
            if ctx.retries == 0 && rec.password.is_some() {
                // No retry will tell: the outcome is settled now, as a batch
                // settles a row, by one login with the password. A generated
                // one, which nobody else knows, is handed out with what is
                // known when even that login fails.
                match settle_by_login(rec, ctx) {
                    Ok(true) => {
                        console.status("Success!");
                        return Ok(());
                    }
                    Ok(false) => {}
                    Err(_) if !rec.password_generated => {}
                    Err(_) => {
                        if let (Some(pw), false) = (&rec.password, ctx.opts.json) {
                            console.status_always(&format!(
                                "Generated password (the registration's answer was lost and its \
                                 outcome cannot be told now; if {} exists, this is its password): {}",
                                rec.username.as_deref().unwrap_or("?"),
                                pw.expose()
                            ));
                        }
                    }
                }
            }
            Err(explain(e, &hs, rec))
        }
        _ => Err(explain(e, &hs, rec)),
    }
}

/// Whether the account in use is the one an earlier attempt created: a
/// login with the password says. The session it opens becomes the hooks'
/// session when they asked for one; the post stage then ends every session
/// of the account, so one whose login answer was lost goes too.
pub fn settle_by_login(rec: &mut Record, ctx: &mut Ctx<'_>) -> Result<bool, Error> {
    let hs = ctx.login_server(rec)?;
    let (Some(user), Some(password)) = (rec.username.as_deref(), rec.password.as_ref()) else {
        return Ok(false);
    };
    match hs.login(user, password) {
        Ok(session) => {
            ctx.console.verbose(&format!(
                "{}: an earlier attempt had registered it",
                session.user_id
            ));
            rec.user_id = Some(session.user_id);
            rec.outcome = Some(Outcome::Registered);
            rec.created_here = true;
            rec.access_token = session.access_token;
            rec.device_id = session.device_id;
            Ok(true)
        }
        Err(e) if is_wrong_password(&e) => Ok(false),
        Err(e) => Err(Error::Server(HsError::GaveUp {
            why: format!(
                "cannot tell whether an earlier attempt created {user}: the login that would \
                 settle it failed"
            ),
            cause: Box::new(e),
        })),
    }
}

/// The one answer that means "this password is not the account's".
fn is_wrong_password(e: &HsError) -> bool {
    matches!(e, HsError::Status { status: 403, errcode, .. } if errcode.as_deref() == Some("M_FORBIDDEN"))
}

/// The request body the record makes. Signing must have run.
pub fn request(rec: &Record) -> Result<RegisterRequest<'_>, Error> {
    let missing = |what: &str| Error::Input(format!("cannot submit: no {what}"));
    Ok(RegisterRequest {
        nonce: rec.nonce.as_deref().ok_or_else(|| missing("nonce"))?,
        username: rec.username.as_deref().ok_or_else(|| missing("username"))?,
        password: rec
            .password
            .as_ref()
            .ok_or_else(|| missing("password"))?
            .expose(),
        mac: rec.mac.as_deref().ok_or_else(|| missing("mac"))?,
        admin: rec.admin.unwrap_or(false),
        user_type: rec.user_type.as_deref(),
        displayname: rec.displayname.as_deref(),
        inhibit_login: !rec.want_session,
    })
}

/// The same through MAS's Admin API: create the user, then set its
/// password and (with `--admin`) its admin flag. The original's lines are
/// said as for Synapse. A lost answer to the create is settled by a lookup
/// by username; a later step that fails leaves the row `incomplete`, with
/// the steps left for a rerun (`undone.account`).
fn submit_mas(rec: &mut Record, ctx: &mut Ctx<'_>, mas: &MasBackend) -> Result<(), Error> {
    let console = ctx.console;
    let username = rec.username.as_deref().unwrap_or("").trim().to_lowercase();
    if rec.password.is_none() {
        return Err(Error::Input("cannot submit: no password".into()));
    }
    if !rec.announced {
        console.status("Sending registration request...");
    }
    rec.announced = true;
    let user_id = ctx.user_id(rec)?;
    let api = mas.mas();
    console.debug(&format!("POST {}/api/admin/v1/users", api.hs.base_url()));
    let existing = || -> Result<_, Error> {
        api.user_by_username(&username)?
            .ok_or_else(|| Error::Input(format!("{user_id} exists, but MAS cannot find it")))
    };
    let user = match api.create_user(&username) {
        Ok(Created::User(u)) => u,
        // An earlier attempt's create may have reached MAS: the user of that
        // name is this row's, and is finished.
        Ok(Created::Exists) if rec.maybe_sent => existing()?,
        Ok(Created::Exists) => {
            rec.user_id = Some(user_id);
            if ctx.opts.exists_ok {
                rec.outcome = Some(Outcome::Exists);
                console.status("User already exists. Skipping.");
                return Ok(());
            }
            return Err(Error::Server(in_use(api.hs.base_url())));
        }
        Err(e) if verdict(&e) == Verdict::Transient => {
            // The answer was lost: the create is sent again under the run's
            // retry policy and budget, and a "user exists" then is this
            // row's (a lookup by name finds it). A lost answer to that one
            // is settled again the same way.
            rec.maybe_sent = true;
            if ctx.retries > 0 {
                return Err(Error::Again {
                    from: Stage::Submit,
                    cause: Box::new(e),
                });
            }
            // One registration, no retries: settled once, now.
            match api.user_by_username(&username)? {
                Some(u) => u,
                None => match api.create_user(&username)? {
                    Created::User(u) => u,
                    Created::Exists => existing()?,
                },
            }
        }
        Err(e) => return Err(e.into()),
    };
    console.verbose(&format!("created {user_id} in MAS ({})", user.id));
    rec.user_id = Some(user_id.clone());
    rec.created_here = true;
    finish_mas(
        rec,
        ctx,
        mas,
        &user.id,
        &[mas::SET_PASSWORD, mas::SET_ADMIN],
        false,
    )?;
    rec.outcome = Some(Outcome::Registered);
    if rec.want_session {
        // The hooks' session as the new user: a login at MAS, which the post
        // stage ends.
        let password = rec.password.clone().unwrap_or_default();
        match api.hs.login(&username, &password) {
            Ok(session) => {
                rec.access_token = session.access_token;
                rec.device_id = session.device_id;
            }
            Err(e) => {
                return Err(Error::AfterCreate {
                    user_id,
                    existed: false,
                    step: "logging in at MAS for the hooks' session".into(),
                    cause: e.to_string(),
                    undone: Box::new(Undone {
                        from: Some(HookPoint::After(Stage::Submit).to_string()),
                        live_session: false,
                        want_session: true,
                        account: Vec::new(),
                    }),
                    left: String::new(),
                });
            }
        }
    }
    console.status("Success!");
    Ok(())
}

/// The MAS user of a row whose earlier attempt may have created it: it is
/// the row's, and what registration sets (password, admin flag) is set.
pub fn settle_mas(rec: &mut Record, ctx: &mut Ctx<'_>, mas: &MasBackend) -> Result<bool, Error> {
    let username = rec.username.as_deref().unwrap_or("").trim().to_lowercase();
    let Some(user) = mas.mas().user_by_username(&username)? else {
        return Ok(false);
    };
    if rec.password.is_none() {
        return Ok(false);
    }
    ctx.console.verbose(&format!(
        "{username}: an earlier attempt may have created it in MAS; finishing it"
    ));
    finish_mas(
        rec,
        ctx,
        mas,
        &user.id,
        &[mas::SET_PASSWORD, mas::SET_ADMIN],
        false,
    )?;
    rec.outcome = Some(Outcome::Registered);
    rec.created_here = true;
    Ok(true)
}

/// Sets the `steps` registration left on the MAS user `id` (all of them
/// when it was just created, those a results file records on a rerun);
/// what fails leaves the account `incomplete` with the steps still to do.
pub fn finish_mas(
    rec: &mut Record,
    ctx: &mut Ctx<'_>,
    mas: &MasBackend,
    id: &str,
    steps: &[&str],
    existed: bool,
) -> Result<(), Error> {
    let password = rec
        .password
        .clone()
        .ok_or_else(|| Error::Input("cannot set the password: none is known".into()))?;
    let admin = rec.admin.unwrap_or(false);
    mas.finish(id, steps, &password, admin, ctx.opts.ignore_password_policy)
        .map_err(|failed| {
            let (i, e) = *failed;
            Error::AfterCreate {
                user_id: rec.user_id.clone().unwrap_or_default(),
                existed,
                step: match steps[i] {
                    mas::SET_PASSWORD => "setting its password in MAS".into(),
                    _ => "making it an admin in MAS".into(),
                },
                cause: e.to_string(),
                undone: Box::new(Undone {
                    from: Some(HookPoint::After(Stage::Submit).to_string()),
                    live_session: false,
                    want_session: rec.want_session,
                    account: steps[i..].iter().map(|s| s.to_string()).collect(),
                }),
                left: steps[i..]
                    .iter()
                    .map(|s| mas::step_left(s))
                    .collect::<Vec<_>>()
                    .join("; "),
            }
        })
}

/// What the original says of a name in use (`User ID already taken.`), for
/// a user MAS has already.
fn in_use(mas_url: &str) -> HsError {
    HsError::Status {
        url: format!("{mas_url}/api/admin/v1/users"),
        status: 400,
        reason: "Bad Request",
        errcode: Some(USER_IN_USE.into()),
        error: Some("User ID already taken.".into()),
        json: true,
        retry_after_ms: None,
        body: None,
    }
}
