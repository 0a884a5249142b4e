//! Account rules against the real embedded store: sessions, refresh rotation and theft
//! detection, logout, TOTP and backup-code replay, bot tokens.

// Test helpers panic on anything unexpected; that is how a test fails.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use enrichment_actors::accounts::{AccountConfig, AccountService};
use enrichment_actors::auth::{self, JwtKeys, Keyring, PasswordParams};
use enrichment_actors::users::UserDirectory;
use enrichment_protocol::SnowflakeGenerator;
use enrichment_protocol::rest::{CreateApplication, LoginRequest, RegisterRequest};
use enrichment_storage::embedded::EmbeddedStore;
use tempfile::TempDir;

struct Fixture {
    accounts: AccountService,
    _dir: TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let stores = Arc::new(EmbeddedStore::open(&dir.path().join("store")).unwrap()).stores();
    let keys = JwtKeys::ephemeral("enrichment", "enrichment-api").unwrap();
    let accounts = AccountService::new(
        stores.clone(),
        UserDirectory::new(stores.users.clone()),
        Arc::new(Keyring::fixed(keys)),
        Arc::new(SnowflakeGenerator::new(1, 1)),
        AccountConfig {
            access_ttl: Duration::from_secs(60),
            refresh_ttl: Duration::from_secs(3600),
            password: PasswordParams::for_tests(),
            login_attempts_per_account: 10,
            login_attempts_per_ip: 10,
            login_window: Duration::from_secs(60),
            session_cache: Duration::from_secs(5),
        },
    );
    Fixture {
        accounts,
        _dir: dir,
    }
}

fn register(name: &str) -> RegisterRequest {
    RegisterRequest {
        username: name.into(),
        email: format!("{name}@example.com"),
        password: "correct horse battery".into(),
        global_name: None,
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn rotation_chain_and_reuse_revokes_the_session() {
    let f = fixture();
    let reg = f.accounts.register(register("rot")).await.unwrap();
    let who = f.accounts.authenticate(&reg.token).await.unwrap();
    let t1 = f.accounts.refresh(&reg.refresh_token).await.unwrap();
    let t2 = f.accounts.refresh(&t1.refresh_token).await.unwrap();
    // Each rotation stays in the same session.
    let who2 = f.accounts.authenticate(&t2.token).await.unwrap();
    assert_eq!(who.session, who2.session);
    assert_eq!(who.user_id, who2.user_id);
    // Presenting a spent token: theft. The live chain dies with it.
    assert_eq!(
        f.accounts
            .refresh(&t1.refresh_token)
            .await
            .unwrap_err()
            .status,
        401
    );
    assert_eq!(
        f.accounts
            .refresh(&t2.refresh_token)
            .await
            .unwrap_err()
            .status,
        401
    );
    assert_eq!(
        f.accounts.authenticate(&t2.token).await.unwrap_err().status,
        401
    );
    // A new login opens an independent session.
    let login = f
        .accounts
        .login(
            LoginRequest {
                login: "rot".into(),
                password: "correct horse battery".into(),
            },
            "1.2.3.4",
        )
        .await
        .unwrap();
    let fresh = f
        .accounts
        .authenticate(login.token.as_deref().unwrap())
        .await
        .unwrap();
    assert_ne!(fresh.session, who.session);
    f.accounts.logout(fresh).await.unwrap();
    assert!(
        f.accounts
            .authenticate(login.token.as_deref().unwrap())
            .await
            .is_err()
    );
    assert!(
        f.accounts
            .refresh(login.refresh_token.as_deref().unwrap())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn totp_and_backup_codes_are_single_use() {
    let f = fixture();
    let reg = f.accounts.register(register("mfa")).await.unwrap();
    let who = f.accounts.authenticate(&reg.token).await.unwrap();
    let secret = auth::generate_secret();
    let prev = auth::current_code(&secret, unix_now() - 30).unwrap();
    let enabled = f
        .accounts
        .enable_totp(who, &secret, &prev, "correct horse battery".into())
        .await
        .unwrap();
    // The code used to enable cannot log in again.
    let login = || LoginRequest {
        login: "mfa".into(),
        password: "correct horse battery".into(),
    };
    let step1 = f.accounts.login(login(), "ip").await.unwrap();
    let ticket = step1.ticket.unwrap();
    assert!(
        f.accounts.login_mfa(&ticket, &prev, "ip").await.is_err(),
        "replayed enable code accepted"
    );
    let now_code = auth::current_code(&secret, unix_now()).unwrap();
    f.accounts
        .login_mfa(&ticket, &now_code, "ip")
        .await
        .unwrap();
    assert_eq!(
        f.accounts
            .login_mfa(&ticket, &now_code, "ip")
            .await
            .unwrap_err()
            .code(),
        60008
    );
    let backup = enabled.backup_codes[3].code.clone();
    f.accounts.login_mfa(&ticket, &backup, "ip2").await.unwrap();
    assert_eq!(
        f.accounts
            .login_mfa(&ticket, &backup, "ip2")
            .await
            .unwrap_err()
            .code(),
        60008
    );
    // Uppercase and dashes are tolerated, as users type codes.
    let other = enabled.backup_codes[4].code.to_uppercase();
    let dashed = format!("{}-{}", &other[..4], &other[4..]);
    f.accounts.login_mfa(&ticket, &dashed, "ip3").await.unwrap();
}

#[tokio::test]
async fn bot_tokens_resolve_and_die_on_reset() {
    let f = fixture();
    let reg = f.accounts.register(register("dev")).await.unwrap();
    let who = f.accounts.authenticate(&reg.token).await.unwrap();
    let app = f
        .accounts
        .create_application(
            who,
            CreateApplication {
                name: "Helper".into(),
                description: None,
            },
        )
        .await
        .unwrap();
    let t1 = f.accounts.reset_bot_token(who, app.id).await.unwrap();
    let bot = f.accounts.authenticate(&format!("Bot {t1}")).await.unwrap();
    assert!(bot.bot);
    assert_eq!(Some(bot.user_id), app.bot.as_ref().map(|b| b.id));
    assert_eq!(auth::bot_token_user_id(&t1), Some(bot.user_id.get()));
    let t2 = f.accounts.reset_bot_token(who, app.id).await.unwrap();
    assert!(
        f.accounts.authenticate(&format!("Bot {t1}")).await.is_err(),
        "old token still valid"
    );
    assert!(f.accounts.authenticate(&format!("Bot {t2}")).await.is_ok());
    assert!(f.accounts.authenticate(&t2).await.is_ok(), "bare bot token");
}
