//! Registration, login, refresh rotation, logout, MFA and login throttling.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

async fn login(t: &TestNode, login: &str, password: &str) -> Resp {
    t.call(
        Method::POST,
        "/auth/login",
        None,
        Some(json!({"login": login, "password": password})),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_login_and_uniqueness() {
    let t = TestNode::start().await;
    let a = t.register("carol").await;
    let me = t.get("/users/@me", &a.token).await.ok(200);
    assert_eq!(me["username"], "carol");
    assert_eq!(me["email"], "carol@example.com");
    assert_eq!(me["mfa_enabled"], false);
    let public = t.get(&format!("/users/{}", a.id), &a.token).await.ok(200);
    assert!(public.get("email").is_none(), "no email in the public view");
    // Duplicates, in any case.
    let dup = t
        .call(
            Method::POST,
            "/auth/register",
            None,
            Some(json!({"username": "carol", "email": "x@example.com", "password": "long enough"})),
        )
        .await;
    dup.err(400, 50035);
    assert!(dup.body["errors"]["username"].is_object());
    let dup = t.call(Method::POST, "/auth/register", None, Some(json!({"username": "carol2", "email": "CAROL@example.com", "password": "long enough"}))).await;
    dup.err(400, 50035);
    assert!(dup.body["errors"]["email"].is_object());
    // Login by email or username; wrong password is a form error on both fields.
    let ok = login(&t, "CAROL@EXAMPLE.COM", "correct horse battery")
        .await
        .ok(200);
    assert_eq!(ok["user_id"], a.id.as_str());
    assert!(ok["token"].is_string());
    login(&t, "carol", "correct horse battery").await.ok(200);
    let bad = login(&t, "carol", "wrong password").await;
    bad.err(400, 50035);
    assert!(bad.body["errors"]["login"].is_object() && bad.body["errors"]["password"].is_object());
    login(&t, "nobody", "whatever pw").await.err(400, 50035);
    // Renaming keeps uniqueness.
    t.register("dave").await;
    t.patch("/users/@me", &a.token, json!({"username": "dave"}))
        .await
        .err(400, 50035);
    let renamed = t
        .patch(
            "/users/@me",
            &a.token,
            json!({"username": "carol.b", "global_name": "Carol"}),
        )
        .await
        .ok(200);
    assert_eq!(renamed["global_name"], "Carol");
    login(&t, "carol.b", "correct horse battery").await.ok(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_rotation_reuse_detection_and_logout() {
    let t = TestNode::start().await;
    let a = t.register("erin").await;
    let r1 = t
        .call(
            Method::POST,
            "/auth/refresh",
            None,
            Some(json!({"refresh_token": a.refresh_token})),
        )
        .await
        .ok(200);
    let (access2, refresh2) = (
        r1["token"].as_str().unwrap().to_owned(),
        r1["refresh_token"].as_str().unwrap().to_owned(),
    );
    assert_ne!(refresh2, a.refresh_token);
    t.get("/users/@me", &access2).await.ok(200);
    // Reusing the rotated token is theft: the whole session dies, including fresh tokens.
    t.call(
        Method::POST,
        "/auth/refresh",
        None,
        Some(json!({"refresh_token": a.refresh_token})),
    )
    .await
    .err(401, 40001);
    t.call(
        Method::POST,
        "/auth/refresh",
        None,
        Some(json!({"refresh_token": refresh2})),
    )
    .await
    .err(401, 40001);
    t.get("/users/@me", &access2).await.err(401, 40001);
    t.get("/users/@me", &a.token).await.err(401, 40001);
    // Another login is another session, unaffected.
    let l = login(&t, "erin", "correct horse battery").await.ok(200);
    let token = l["token"].as_str().unwrap().to_owned();
    t.get("/users/@me", &token).await.ok(200);
    t.post("/auth/logout", &token, json!({})).await.ok(204);
    t.get("/users/@me", &token).await.err(401, 40001);
    t.call(
        Method::POST,
        "/auth/refresh",
        None,
        Some(json!({"refresh_token": l["refresh_token"]})),
    )
    .await
    .err(401, 40001);
    t.call(
        Method::POST,
        "/auth/refresh",
        None,
        Some(json!({"refresh_token": "garbage"})),
    )
    .await
    .err(401, 40001);
    // Bearer prefix and bare tokens both work; garbage does not.
    let l = login(&t, "erin", "correct horse battery").await.ok(200);
    let token = l["token"].as_str().unwrap();
    t.get("/users/@me", &format!("Bearer {token}"))
        .await
        .ok(200);
    t.get("/users/@me", "Bearer not.a.jwt")
        .await
        .err(401, 40001);
    t.get("/users/@me", "Bot abc.def.ghi").await.err(401, 40001);
    t.call(Method::GET, "/users/@me", None, None)
        .await
        .err(401, 40001);
}

fn code_at(secret: &str, t: u64) -> String {
    enrichment_actors::auth::current_code(secret, t).unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A secret too short or not base32 is named as the problem, not reported as a wrong code, and
/// MFA stays off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_or_malformed_totp_secret_is_a_form_error_on_secret() {
    let t = TestNode::start().await;
    let a = t.register("grace").await;
    // 25 base32 characters: 120 bits. Its code cannot even be computed (totp-rs refuses it).
    let short = "JBSWY3DPEHPK3PXPJBSWY3DPE";
    for (secret, code, message) in [
        (
            short,
            "123456",
            "The secret must be at least 128 bits (26 base32 characters).",
        ),
        (
            "JBSWY3DP",
            "123456",
            "The secret must be at least 128 bits (26 base32 characters).",
        ),
        (
            "not base32 at all, not at all!!",
            "123456",
            "The secret must be base32 (A-Z and 2-7, no padding).",
        ),
    ] {
        let r = t
            .post(
                "/users/@me/mfa/totp/enable",
                &a.token,
                json!({"secret": secret, "code": code, "password": "correct horse battery"}),
            )
            .await;
        assert_eq!(r.status, 400, "{secret}: {}", r.body);
        assert_eq!(r.body["code"], 50035, "{secret}: {}", r.body);
        assert_eq!(
            r.body["errors"]["secret"]["_errors"][0]["message"], message,
            "{secret}: {}",
            r.body
        );
        assert!(r.body["errors"].get("code").is_none(), "{}", r.body);
    }
    assert_eq!(
        t.get("/users/@me", &a.token).await.ok(200)["mfa_enabled"],
        false
    );
    // The shortest secret that is long enough works.
    let secret = "JBSWY3DPEHPK3PXPJBSWY3DPEH";
    t.post(
        "/users/@me/mfa/totp/enable",
        &a.token,
        json!({"secret": secret, "code": code_at(secret, now()), "password": "correct horse battery"}),
    )
    .await
    .ok(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_mfa_enable_login_replay_backup_codes_disable() {
    let t = TestNode::start().await;
    let a = t.register("frank").await;
    let secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let enable = |code: String, pw: &str| json!({"secret": secret, "code": code, "password": pw});
    t.post(
        "/users/@me/mfa/totp/enable",
        &a.token,
        enable("000000".into(), "correct horse battery"),
    )
    .await
    .err(400, 60008);
    t.post(
        "/users/@me/mfa/totp/enable",
        &a.token,
        enable(code_at(secret, now()), "wrong pw"),
    )
    .await
    .err(400, 50035);
    // Codes of the previous step: the current step's code is kept for the login below.
    let enabled = t
        .post(
            "/users/@me/mfa/totp/enable",
            &a.token,
            enable(code_at(secret, now() - 30), "correct horse battery"),
        )
        .await
        .ok(200);
    let backups: Vec<String> = enabled["backup_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["code"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(backups.len(), 10);
    assert_eq!(
        t.get("/users/@me", &a.token).await.ok(200)["mfa_enabled"],
        true
    );
    // Login now needs the second factor.
    let l = login(&t, "frank", "correct horse battery").await.ok(200);
    assert_eq!(l["mfa"], true);
    assert!(l.get("token").is_none());
    let ticket = l["ticket"].as_str().unwrap().to_owned();
    let mfa = |code: String| json!({"ticket": ticket, "code": code});
    t.call(
        Method::POST,
        "/auth/mfa/totp",
        None,
        Some(mfa("123456".into())),
    )
    .await
    .err(400, 60008);
    let code = code_at(secret, now());
    let ok = t
        .call(
            Method::POST,
            "/auth/mfa/totp",
            None,
            Some(mfa(code.clone())),
        )
        .await
        .ok(200);
    t.get("/users/@me", ok["token"].as_str().unwrap())
        .await
        .ok(200);
    // The same code is refused the second time (replay).
    t.call(Method::POST, "/auth/mfa/totp", None, Some(mfa(code)))
        .await
        .err(400, 60008);
    // A backup code works once.
    t.call(
        Method::POST,
        "/auth/mfa/totp",
        None,
        Some(mfa(backups[0].clone())),
    )
    .await
    .ok(200);
    t.call(
        Method::POST,
        "/auth/mfa/totp",
        None,
        Some(mfa(backups[0].clone())),
    )
    .await
    .err(400, 60008);
    // An access token is not a ticket.
    t.call(
        Method::POST,
        "/auth/mfa/totp",
        None,
        Some(json!({"ticket": a.token, "code": backups[1]})),
    )
    .await
    .err(400, 60006);
    // Disabling needs a valid code; then login is single-step again.
    t.post(
        "/users/@me/mfa/totp/disable",
        &a.token,
        json!({"code": "000000"}),
    )
    .await
    .err(400, 60008);
    t.post(
        "/users/@me/mfa/totp/disable",
        &a.token,
        json!({"code": backups[1]}),
    )
    .await
    .ok(200);
    let l: Value = login(&t, "frank", "correct horse battery").await.ok(200);
    assert!(l["token"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_brute_force_is_throttled_per_account() {
    let t = TestNode::start_with(|c| {
        c.auth.login_attempts_per_account = 3;
        c.auth.login_attempts_per_ip = 100;
    })
    .await;
    t.register("grace").await;
    for _ in 0..3 {
        login(&t, "grace", "bad password").await.err(400, 50035);
    }
    // Even the right password is refused while the account is throttled.
    let r = login(&t, "grace", "correct horse battery").await;
    assert_eq!(r.status, 429, "{}", r.body);
    // Another account from the same client is not affected.
    t.register("heidi").await;
    login(&t, "heidi", "correct horse battery").await.ok(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_brute_force_is_throttled_per_ip() {
    let t = TestNode::start_with(|c| {
        c.auth.login_attempts_per_account = 100;
        c.auth.login_attempts_per_ip = 4;
    })
    .await;
    t.register("ivan").await;
    for i in 0..4 {
        login(&t, &format!("ghost{i}"), "bad password")
            .await
            .err(400, 50035);
    }
    let r = login(&t, "ivan", "correct horse battery").await;
    assert_eq!(r.status, 429, "{}", r.body);
}
