//! `register`, `login`, `logout`, `whoami`.

use std::io::{BufRead, IsTerminal};

use enrichment_client::protocol::models::User;
use enrichment_client::protocol::rest::{
    LoginRequest, LogoutRequest, MfaTotpRequest, RegisterRequest,
};
use enrichment_client::{Client, Token};
use serde_json::json;

use crate::cli;
use crate::credentials::Login;
use crate::error::{CliError, CliResult, Exit};
use crate::output::{BOLD, or_dash, paint};
use crate::session::Ctx;

/// The password: the first line of standard input with `--password-stdin`, else a prompt
/// without echo when standard input is a terminal.
fn password(from_stdin: bool) -> CliResult<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError::local(format!("cannot read standard input: {e}")))?;
        let pw = line.trim_end_matches(['\n', '\r']).to_owned();
        if pw.is_empty() {
            return Err(CliError::usage("no password on standard input").with_hint(
                "pipe it in: `printf '%s\\n' \"$PASSWORD\" | enrichctl ... --password-stdin`",
            ));
        }
        return Ok(pw);
    }
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password("Password: ")
            .map_err(|e| CliError::local(format!("cannot read the password: {e}")));
    }
    Err(CliError::usage("no password given")
        .with_hint("add --password-stdin and pass the password on standard input"))
}

/// Keeps the login and reports who it is.
fn remember(ctx: &mut Ctx, token: String, refresh_token: String, user: &User) -> CliResult<()> {
    let server = ctx.server.clone();
    ctx.store.set(
        &server,
        Login {
            token,
            refresh_token,
            user_id: user.id.to_string(),
            username: user.username.clone(),
        },
    )?;
    if ctx.out.json {
        ctx.out.value(user)
    } else {
        ctx.out.say(format!(
            "logged in to {server} as {} ({})",
            paint(BOLD, &user.username),
            user.id
        ));
        Ok(())
    }
}

pub async fn register(ctx: &mut Ctx, args: cli::Register) -> CliResult<()> {
    let password = password(args.password_stdin)?;
    let anon = ctx.anonymous()?;
    let r = anon
        .register(&RegisterRequest {
            username: args.username,
            email: args.email,
            password,
            global_name: args.global_name,
        })
        .await?;
    let user = match r.user {
        Some(u) => u,
        None => {
            anon.with_token(Token::Bearer(r.token.clone()))
                .current_user()
                .await?
        }
    };
    remember(ctx, r.token, r.refresh_token, &user)
}

pub async fn login(ctx: &mut Ctx, args: cli::Login) -> CliResult<()> {
    let password = password(args.password_stdin)?;
    let anon = ctx.anonymous()?;
    let r = anon
        .login(&LoginRequest {
            login: args.login,
            password,
        })
        .await
        .map_err(|e| {
            if e.is_unauthorized() || e.status() == Some(400) {
                CliError::new(
                    Exit::Unauthorized,
                    format!("login refused: {}", CliError::from(e).message),
                )
                .with_hint("check the email (or username) and the password")
            } else {
                e.into()
            }
        })?;
    let (token, refresh) = match (r.token, r.refresh_token) {
        (Some(t), Some(rt)) => (t, rt),
        _ if r.mfa => {
            let (Some(ticket), Some(code)) = (r.ticket, args.totp) else {
                return Err(
                    CliError::usage("this account uses two-factor authentication").with_hint(
                        "add --totp CODE with a code from your authenticator (or a backup code)",
                    ),
                );
            };
            let t = anon
                .verify_mfa_totp(&MfaTotpRequest { ticket, code })
                .await?;
            (t.token, t.refresh_token)
        }
        _ => {
            return Err(CliError::local(
                "the server answered the login without a token",
            ));
        }
    };
    let user = anon
        .with_token(Token::Bearer(token.clone()))
        .current_user()
        .await?;
    remember(ctx, token, refresh, &user)
}

pub async fn logout(ctx: &mut Ctx) -> CliResult<()> {
    let server = ctx.server.clone();
    let Some(login) = ctx.store.login(&server).cloned() else {
        if ctx.out.json {
            return ctx
                .out
                .value(&json!({"server": server, "logged_out": false}));
        }
        ctx.out.say(format!("not logged in to {server}"));
        return Ok(());
    };
    // Revoke on the server when it can be reached; forget locally in any case.
    let revoked = match Client::builder(server.as_str())
        .token(Token::Bearer(login.token.clone()))
        .build()
    {
        Ok(c) => c
            .logout(&LogoutRequest {
                refresh_token: Some(login.refresh_token.clone()),
            })
            .await
            .map_err(CliError::from),
        Err(e) => Err(e.into()),
    };
    ctx.store.remove(&server)?;
    if let Err(e) = &revoked
        && e.exit != Exit::Unauthorized
    {
        crate::output::status(format!(
            "the server was not told ({}); the login is forgotten here",
            e.message
        ));
    }
    if ctx.out.json {
        return ctx
            .out
            .value(&json!({"server": server, "logged_out": true, "user_id": login.user_id}));
    }
    ctx.out
        .say(format!("logged out of {server} ({})", login.username));
    Ok(())
}

pub async fn whoami(ctx: &mut Ctx) -> CliResult<()> {
    let me = ctx.client().await?.current_user().await?;
    if ctx.out.json {
        return ctx.out.value(&me);
    }
    ctx.out.fields(&[
        ("user", paint(BOLD, &me.username)),
        ("id", me.id.to_string()),
        ("display name", or_dash(me.global_name.as_ref())),
        ("email", or_dash(me.email.as_ref())),
        ("two-factor", or_dash(me.mfa_enabled)),
        ("server", ctx.server.clone()),
        ("credentials", ctx.store.path().display().to_string()),
    ]);
    Ok(())
}
