//! Which server to talk to and as whom: the server URL (flag, environment, last login, or the
//! local default), the stored login (refreshed when its access token has expired), and the
//! admin token.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use enrichment_client::admin::AdminClient;
use enrichment_client::protocol::rest::RefreshRequest;
use enrichment_client::{Client, RetryPolicy, Token};

use crate::credentials::{Login, Store};
use crate::error::{CliError, CliResult, Exit};
use crate::output::Output;

/// Where a server is assumed to run when nothing else says.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// Refresh an access token this long before it expires.
const EXPIRY_MARGIN: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct Ctx {
    pub server: String,
    pub out: Output,
    pub store: Store,
    admin_token: Option<String>,
}

/// `http://host:port` from whatever the user typed (a trailing `/`, `/api` or `/api/v10` is
/// dropped), so one server has one key in the credentials file.
pub fn normalize_server(url: &str) -> String {
    let t = url.trim().trim_end_matches('/');
    let t = t
        .strip_suffix("/api/v10")
        .or_else(|| t.strip_suffix("/api"))
        .unwrap_or(t);
    t.to_owned()
}

impl Ctx {
    pub fn new(
        server: Option<String>,
        admin_token: Option<String>,
        out: Output,
        store: Store,
    ) -> CliResult<Ctx> {
        let server = server
            .or_else(|| store.credentials.default_server.clone())
            .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
        let server = normalize_server(&server);
        // Checked up front, so a typo is a usage error and not a network one.
        Client::new(server.as_str())?;
        Ok(Ctx {
            server,
            out,
            store,
            admin_token: admin_token.filter(|t| !t.is_empty()),
        })
    }

    fn builder(&self) -> enrichment_client::ClientBuilder {
        // An interactive tool reports an unreachable server quickly instead of retrying
        // for long.
        Client::builder(self.server.as_str())
            .timeout(Duration::from_secs(30))
            .retry(RetryPolicy {
                max_retries: 1,
                base_backoff: Duration::from_millis(200),
                ..RetryPolicy::default()
            })
            .user_agent(format!("enrichctl/{}", env!("CARGO_PKG_VERSION")))
    }

    /// A client without a token (register, login).
    pub fn anonymous(&self) -> CliResult<Client> {
        Ok(self.builder().build()?)
    }

    /// A client with the stored login, refreshed first if its access token has expired.
    pub async fn client(&mut self) -> CliResult<Client> {
        let login = self
            .store
            .login(&self.server)
            .cloned()
            .ok_or_else(|| CliError::not_logged_in(&self.server))?;
        let login = if expires_soon(&login.token) {
            // One renewal at a time across processes, from what is on disk now: another
            // `enrichctl` may have renewed (and so rotated the refresh token) meanwhile.
            let _lock = self.store.lock()?;
            self.store.reload()?;
            let login = self
                .store
                .login(&self.server)
                .cloned()
                .ok_or_else(|| CliError::not_logged_in(&self.server))?;
            if expires_soon(&login.token) {
                self.refresh(login).await?
            } else {
                login
            }
        } else {
            login
        };
        Ok(self.builder().token(Token::Bearer(login.token)).build()?)
    }

    /// Exchanges the refresh token (the caller holds the credentials lock).
    async fn refresh(&mut self, login: Login) -> CliResult<Login> {
        let body = RefreshRequest {
            refresh_token: login.refresh_token.clone(),
        };
        match self.anonymous()?.refresh(&body).await {
            Ok(t) => {
                let fresh = Login {
                    token: t.token,
                    refresh_token: t.refresh_token,
                    ..login
                };
                self.store.set(&self.server, fresh.clone())?;
                Ok(fresh)
            }
            Err(e) if e.is_unauthorized() => {
                self.store.remove(&self.server)?;
                Err(CliError::new(
                    Exit::Unauthorized,
                    format!("your login to {} has expired", self.server),
                )
                .with_hint("run `enrichctl login --login EMAIL --password-stdin`"))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The admin API, with the token from `--admin-token` or `ENRICHMENT_ADMIN_TOKEN`.
    pub fn admin(&self) -> CliResult<AdminClient> {
        let token = self.admin_token.clone().ok_or_else(|| {
            CliError::new(Exit::Unauthorized, "cluster commands need the admin token").with_hint(
                "pass --admin-token TOKEN or set ENRICHMENT_ADMIN_TOKEN; a node prints its \
                 generated token on first start and keeps it in {data_dir}/admin-token",
            )
        })?;
        Ok(self.anonymous()?.admin(token))
    }
}

/// Whether a JWT's `exp` is past (or close); a token that cannot be read is left to the
/// server to judge.
fn expires_soon(jwt: &str) -> bool {
    let Some(payload) = jwt.split('.').nth(1) else {
        return false;
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload) else {
        return false;
    };
    let Some(exp) = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v["exp"].as_u64())
    else {
        return false;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Duration::from_secs(exp) <= now + EXPIRY_MARGIN
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(exp: u64) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!(
            "{}.{}.sig",
            b64(r#"{"alg":"EdDSA"}"#),
            b64(&format!(r#"{{"sub":"1","exp":{exp}}}"#))
        )
    }

    #[test]
    fn expiry_is_read_from_the_token() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(expires_soon(&jwt(now - 10)));
        assert!(expires_soon(&jwt(now + 5)));
        assert!(!expires_soon(&jwt(now + 600)));
        assert!(!expires_soon("not-a-jwt"));
    }

    #[test]
    fn servers_have_one_spelling() {
        for s in [
            "http://h:1",
            "http://h:1/",
            "http://h:1/api",
            "http://h:1/api/v10/",
        ] {
            assert_eq!(normalize_server(s), "http://h:1");
        }
    }
}
