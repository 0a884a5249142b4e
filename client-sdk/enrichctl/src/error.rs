//! Failures and the exit codes they map to. Every message says what went wrong and, where there
//! is one, what to do about it.

use std::fmt;

/// `enrichctl`'s exit codes (also listed in `enrichctl --help`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Anything not covered below (a local file, a bad answer).
    Failure = 1,
    /// Bad arguments or input (clap uses 2 for usage errors too).
    Usage = 2,
    /// Not logged in, or the server refused the token (401).
    Unauthorized = 3,
    /// The thing named does not exist, or is not visible to you (404).
    NotFound = 4,
    /// The server failed (5xx), or could not be reached.
    Unavailable = 5,
    /// Logged in, but not allowed (403).
    Forbidden = 6,
    /// The server refused the request as it was (400, 409, 429 and other 4xx).
    Rejected = 7,
}

/// The exit codes as `--help` shows them.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  other failure (local files, unexpected answers)
  2  usage: bad arguments or input
  3  not logged in, or the token was refused (401)
  4  not found (404)
  5  server error (5xx) or server unreachable
  6  forbidden: missing permissions or access (403)
  7  request rejected (400 invalid form body, 409, 429, other 4xx)";

#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub message: String,
    /// What to do about it, shown on its own line.
    pub hint: Option<String>,
}

impl CliError {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        CliError {
            exit,
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn local(message: impl Into<String>) -> Self {
        CliError::new(Exit::Failure, message)
    }

    pub fn usage(message: impl Into<String>) -> Self {
        CliError::new(Exit::Usage, message)
    }

    pub fn not_logged_in(server: &str) -> Self {
        CliError::new(Exit::Unauthorized, format!("not logged in to {server}")).with_hint(
            "run `enrichctl login --login EMAIL --password-stdin` (or `enrichctl register ...`)",
        )
    }

    /// The exit code for an HTTP status the server answered with.
    pub fn exit_for_status(status: u16) -> Exit {
        match status {
            401 => Exit::Unauthorized,
            403 => Exit::Forbidden,
            404 => Exit::NotFound,
            500..=599 => Exit::Unavailable,
            _ => Exit::Rejected,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CliError {}

pub type CliResult<T> = Result<T, CliError>;

impl From<enrichment_client::Error> for CliError {
    fn from(e: enrichment_client::Error) -> Self {
        use enrichment_client::Error as E;
        use enrichment_client::gateway::GatewayError;
        match e {
            E::Api {
                status,
                code,
                message,
                errors,
            } => {
                let exit = CliError::exit_for_status(status);
                let mut text =
                    format!("the server refused: {message} (HTTP {status}, code {code})");
                if let Some(errors) = &errors {
                    for (path, msg) in form_errors(errors) {
                        text.push_str(&format!("\n  {path}: {msg}"));
                    }
                }
                let err = CliError::new(exit, text);
                match exit {
                    Exit::Unauthorized => err.with_hint(
                        "log in again: `enrichctl login --login EMAIL --password-stdin`",
                    ),
                    Exit::Forbidden => err.with_hint(
                        "your account lacks the permission for this in that guild or channel",
                    ),
                    Exit::NotFound => err.with_hint(
                        "check the id; `enrichctl guild list` and `enrichctl channel list GUILD_ID` show yours",
                    ),
                    _ => err,
                }
            }
            E::RateLimited { retry_after, .. } => CliError::new(
                Exit::Rejected,
                format!(
                    "rate limited by the server; try again in {:.1}s",
                    retry_after.as_secs_f64()
                ),
            ),
            E::Http(e) => {
                let mut text = format!("cannot reach the server: {e}");
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    text.push_str(&format!(": {s}"));
                    source = s.source();
                }
                CliError::new(Exit::Unavailable, text).with_hint(
                    "is the server running? Point enrichctl at it with --server URL or ENRICHMENT_SERVER",
                )
            }
            E::Decode { status, reason } => CliError::new(
                Exit::Failure,
                format!("unexpected answer from the server (HTTP {status}): {reason}"),
            )
            .with_hint("is --server an Enrichment server?"),
            E::InvalidBaseUrl(url) => CliError::usage(format!(
                "invalid server URL `{url}`: expected http://host[:port] or https://host[:port]"
            )),
            E::NoToken => CliError::new(Exit::Unauthorized, "this needs a login")
                .with_hint("run `enrichctl login --login EMAIL --password-stdin`"),
            E::Gateway(GatewayError::Closed { code: 4004, reason }) => CliError::new(
                Exit::Unauthorized,
                format!("the gateway refused the token: {reason}"),
            )
            .with_hint("log in again: `enrichctl login --login EMAIL --password-stdin`"),
            E::Gateway(e) => CliError::new(Exit::Unavailable, format!("gateway: {e}")),
        }
    }
}

/// Flattens Discord's 50035 error tree into `(path, message)` pairs.
pub fn form_errors(tree: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(v: &serde_json::Value, path: &mut Vec<String>, out: &mut Vec<(String, String)>) {
        let Some(obj) = v.as_object() else { return };
        for (k, child) in obj {
            if k == "_errors" {
                for e in child.as_array().into_iter().flatten() {
                    let msg = e["message"].as_str().unwrap_or("invalid").to_owned();
                    out.push((path.join("."), msg));
                }
            } else {
                path.push(k.clone());
                walk(child, path, out);
                path.pop();
            }
        }
    }
    let mut out = Vec::new();
    walk(tree, &mut Vec::new(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_errors_name_their_fields() {
        let tree = serde_json::json!({
            "name": {"_errors": [{"code": "BASE_TYPE_BAD_LENGTH", "message": "Must be between 2 and 100 in length."}]},
            "permission_overwrites": {"0": {"id": {"_errors": [{"code": "X", "message": "bad id"}]}}}
        });
        let mut got = form_errors(&tree);
        got.sort();
        assert_eq!(
            got,
            vec![
                ("name".into(), "Must be between 2 and 100 in length.".into()),
                ("permission_overwrites.0.id".into(), "bad id".into()),
            ]
        );
    }

    #[test]
    fn statuses_map_to_exit_codes() {
        assert_eq!(CliError::exit_for_status(401), Exit::Unauthorized);
        assert_eq!(CliError::exit_for_status(403), Exit::Forbidden);
        assert_eq!(CliError::exit_for_status(404), Exit::NotFound);
        assert_eq!(CliError::exit_for_status(400), Exit::Rejected);
        assert_eq!(CliError::exit_for_status(503), Exit::Unavailable);
    }
}
