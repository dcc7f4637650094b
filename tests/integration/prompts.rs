//! The interactive prompts, driven through a pseudo-terminal for both tools.

use crate::{fresh, synapse};
use serde_json::{Value, json};
use std::process::Command;

struct Session {
    output: String,
    exit: i64,
    echo: Option<bool>,
}

/// Runs `program args` on a terminal, answering each `(prompt, answer)` in turn.
fn drive(program: &str, args: &[&str], steps: &[(&str, &str)]) -> Session {
    drive_with(program, args, steps, false)
}

/// The same; with `stderr_null`, standard error goes to /dev/null.
fn drive_with(program: &str, args: &[&str], steps: &[(&str, &str)], stderr_null: bool) -> Session {
    let spec = json!({"steps": steps, "timeout": 30, "stderr_null": stderr_null});
    let out = Command::new("python3")
        .arg(crate::rig::root().join("tests/pty_drive.py"))
        .arg(spec.to_string())
        .arg(program)
        .args(args)
        .env("USER", "termuser")
        .env("LOGNAME", "termuser")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("pty driver: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(
        v["unmatched"].is_null(),
        "prompt {} never appeared in {:?}",
        v["unmatched"],
        v["output"]
    );
    Session {
        output: strip_ansi(v["output"].as_str().unwrap()),
        exit: v["exit"].as_i64().unwrap(),
        echo: v["echo"].as_bool(),
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        if c != '\r' {
            out.push(c);
        }
    }
    out
}

fn ours() -> String {
    assert_cmd::cargo::cargo_bin!("register_new_matrix_user")
        .to_string_lossy()
        .into_owned()
}

fn both() -> [String; 2] {
    [synapse().original.to_string_lossy().into_owned(), ours()]
}

/// `2>/dev/null` on a terminal hides none of the prompts: the passwords are
/// asked on the terminal itself, as the original's getpass asks them.
#[test]
fn the_prompts_show_with_standard_error_thrown_away() {
    let s = synapse();
    for program in both() {
        let user = fresh("ttynull");
        let session = drive_with(
            &program,
            &["-k", &s.secret, "--no-admin", "-u", &user, &s.url],
            &[
                ("Password: ", "pw-tty-null\n"),
                ("Confirm password: ", "pw-tty-null\n"),
            ],
            true,
        );
        assert_eq!(session.exit, 0, "{program}: {}", session.output);
        assert_eq!(
            session.output,
            "Password: \nConfirm password: \nSending registration request...\nSuccess!\n",
            "{program}"
        );
        assert_eq!(session.echo, Some(true), "{program}: echo left off");
        assert!(s.user(&user).is_some());
    }
}

#[test]
fn everything_asked_for() {
    let s = synapse();
    for program in both() {
        let user = fresh("tty");
        let session = drive(
            &program,
            &["-k", &s.secret, &s.url],
            &[
                ("New user localpart [termuser]: ", &format!("{user}\n")),
                ("Password: ", "pw-tty\n"),
                ("Confirm password: ", "pw-tty\n"),
                ("Make admin [no]: ", "y\n"),
            ],
        );
        assert_eq!(session.exit, 0, "{program}: {}", session.output);
        // The whole screen, word for word (the password is not echoed).
        assert_eq!(
            session.output,
            format!(
                "New user localpart [termuser]: {user}\nPassword: \nConfirm password: \n\
                 Make admin [no]: y\nSending registration request...\nSuccess!\n"
            ),
            "{program}"
        );
        assert!(s.is_admin(&user));
        assert!(s.login(&user, "pw-tty").is_some());
    }
}

#[test]
fn default_localpart_is_the_login_name() {
    // Both tools offer the login name; an empty answer takes it. The user
    // "termuser" is registered by whichever runs first, so the second must
    // then fail with the same "already taken" answer.
    let s = synapse();
    let mut outputs = Vec::new();
    for program in both() {
        let session = drive(
            &program,
            &["-p", "pw-default", "--no-admin", "-k", &s.secret, &s.url],
            &[("New user localpart [termuser]: ", "\n")],
        );
        outputs.push((
            session.exit,
            session.output.lines().last().map(str::to_string),
        ));
    }
    assert_eq!(outputs[0].0, 0, "{outputs:?}");
    assert_eq!(outputs[1].0, 1, "{outputs:?}");
    assert_eq!(outputs[1].1.as_deref(), Some("User ID already taken."));
    assert!(s.login("termuser", "pw-default").is_some());
}

#[test]
fn password_mismatch_and_blank() {
    let s = synapse();
    for program in both() {
        let user = fresh("mm");
        let session = drive(
            &program,
            &["-u", &user, "-k", &s.secret, &s.url],
            &[("Password: ", "one\n"), ("Confirm password: ", "two\n")],
        );
        assert_eq!(session.exit, 1, "{program}");
        assert!(
            session.output.ends_with("Passwords do not match\n"),
            "{program}: {:?}",
            session.output
        );
        assert!(s.user(&user).is_none());

        let session = drive(
            &program,
            &["-u", &user, "-k", &s.secret, &s.url],
            &[("Password: ", "\n")],
        );
        assert_eq!(session.exit, 1, "{program}");
        assert!(
            session.output.ends_with("Password cannot be blank.\n"),
            "{program}: {:?}",
            session.output
        );
        assert!(s.user(&user).is_none());
    }
}

#[test]
fn ctrl_c_at_the_password_prompt_restores_echo() {
    let s = synapse();
    for program in both() {
        let user = fresh("intr");
        let session = drive(
            &program,
            &["-u", &user, "-k", &s.secret, &s.url],
            &[("Password: ", "\x03")],
        );
        assert_ne!(session.exit, 0, "{program}");
        assert_eq!(
            session.echo,
            Some(true),
            "{program} left the terminal without echo"
        );
        assert!(s.user(&user).is_none());
    }
    // This tool exits with 130, as a shell reports an interrupted command.
    let session = drive(
        &ours(),
        &["-u", &fresh("intr"), "-k", &s.secret, &s.url],
        &[("Password: ", "\x03")],
    );
    assert_eq!(session.exit, 130);
}
