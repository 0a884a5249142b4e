//! Where `enrichctl login` keeps its tokens: `{config dir}/enrichctl/credentials.json`
//! (`$XDG_CONFIG_HOME` or `~/.config` on Linux), mode 0600 in a 0700 directory, one entry per
//! server plus the server used last, so commands without `--server` go where the last login
//! went.
//!
//! The file is replaced atomically (a private temporary file renamed over it), so a crash never
//! leaves half a file and the token is never readable by other users, not even briefly.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::CliError;

/// One server's login.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Login {
    /// The access token (a JWT), sent as `Authorization: Bearer`.
    pub token: String,
    /// Exchanged for a new access token when the old one has expired.
    pub refresh_token: String,
    pub user_id: String,
    #[serde(default)]
    pub username: String,
}

/// The whole file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// The server of the last login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_server: Option<String>,
    /// Logins by server base URL (no trailing slash).
    #[serde(default)]
    pub servers: BTreeMap<String, Login>,
}

/// The credentials file and what it holds.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    pub credentials: Credentials,
}

impl Store {
    /// `{config dir}/enrichctl/credentials.json`.
    pub fn default_path() -> Result<PathBuf, CliError> {
        let base = dirs::config_dir().ok_or_else(|| {
            CliError::local("cannot find a configuration directory: set HOME or XDG_CONFIG_HOME")
        })?;
        Ok(base.join("enrichctl").join("credentials.json"))
    }

    /// Reads the file; a missing file is an empty store.
    pub fn open(path: PathBuf) -> Result<Store, CliError> {
        let credentials = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                CliError::local(format!(
                    "{} is not a valid credentials file ({e}); delete it and log in again",
                    path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Credentials::default(),
            Err(e) => {
                return Err(CliError::local(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        };
        Ok(Store { path, credentials })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file again (another `enrichctl` may have renewed a token since).
    pub fn reload(&mut self) -> Result<(), CliError> {
        *self = Store::open(self.path.clone())?;
        Ok(())
    }

    /// An exclusive lock shared by every `enrichctl` of this user, held while a token is
    /// renewed: refresh tokens rotate, and a second process presenting the one just rotated
    /// would make the server end the whole login. Released when the guard is dropped.
    pub fn lock(&self) -> Result<fs::File, CliError> {
        let path = self.path.with_extension("lock");
        let fail =
            |e: std::io::Error| CliError::local(format!("cannot lock {}: {e}", path.display()));
        if let Some(dir) = path.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(fail)?;
        }
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(fail)?;
        file.lock().map_err(fail)?;
        Ok(file)
    }

    pub fn login(&self, server: &str) -> Option<&Login> {
        self.credentials.servers.get(server)
    }

    /// Records a login and makes its server the default.
    pub fn set(&mut self, server: &str, login: Login) -> Result<(), CliError> {
        self.credentials.servers.insert(server.to_owned(), login);
        self.credentials.default_server = Some(server.to_owned());
        self.save()
    }

    /// Forgets a server's login; returns it if there was one.
    pub fn remove(&mut self, server: &str) -> Result<Option<Login>, CliError> {
        let old = self.credentials.servers.remove(server);
        if self.credentials.default_server.as_deref() == Some(server) {
            self.credentials.default_server = None;
        }
        self.save()?;
        Ok(old)
    }

    fn save(&self) -> Result<(), CliError> {
        let fail = |what: &str, e: std::io::Error| {
            CliError::local(format!("cannot {what} {}: {e}", self.path.display()))
        };
        if let Some(dir) = self.path.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| fail("create the directory of", e))?;
        }
        let json = serde_json::to_vec_pretty(&self.credentials)
            .map_err(|e| CliError::local(format!("cannot encode credentials: {e}")))?;
        let tmp = self
            .path
            .with_extension(format!("json.tmp.{}", std::process::id()));
        let written = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&json)?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written.map_err(|e| fail("write", e))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn logins_are_saved_privately_and_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("enrichctl").join("credentials.json");
        let mut store = Store::open(path.clone()).unwrap();
        assert!(store.login("http://a").is_none());
        let login = Login {
            token: "t".into(),
            refresh_token: "r".into(),
            user_id: "1".into(),
            username: "alice".into(),
        };
        store.set("http://a", login.clone()).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let again = Store::open(path.clone()).unwrap();
        assert_eq!(again.login("http://a"), Some(&login));
        assert_eq!(
            again.credentials.default_server.as_deref(),
            Some("http://a")
        );
        let mut again = again;
        assert_eq!(again.remove("http://a").unwrap(), Some(login));
        assert!(Store::open(path).unwrap().credentials.servers.is_empty());
    }
}
