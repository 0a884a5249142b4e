//! `/auth/*` and MFA routes, in Discord's user-client shapes.

use actix_web::{HttpRequest, HttpResponse, post, web};
use enrichment_protocol::ErrorBody;
use enrichment_protocol::rest::{
    DisableTotpRequest, EnableTotpRequest, EnableTotpResponse, LoginRequest, LoginResponse,
    LogoutRequest, MfaTotpRequest, RefreshRequest, RegisterRequest, RegisterResponse,
    TokenResponse,
};

use crate::error::{ApiResult, Json};
use crate::state::{Authed, State, client_ip};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(register)
        .service(login)
        .service(login_mfa)
        .service(refresh)
        .service(logout)
        .service(enable_totp)
        .service(disable_totp);
}

/// Creates an account and opens a session.
#[utoipa::path(tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = RegisterResponse), (status = 400, body = ErrorBody)))]
#[post("/auth/register")]
pub async fn register(state: State, body: Json<RegisterRequest>) -> ApiResult<HttpResponse> {
    let res = state.accounts.register(body.0).await?;
    Ok(HttpResponse::Created().json(res))
}

/// Logs in with email or username; answers with an MFA ticket when TOTP is on.
#[utoipa::path(tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 400, body = ErrorBody), (status = 429, body = ErrorBody)))]
#[post("/auth/login")]
pub async fn login(
    state: State,
    req: HttpRequest,
    body: Json<LoginRequest>,
) -> ApiResult<HttpResponse> {
    let res = state.accounts.login(body.0, &client_ip(&req)).await?;
    Ok(HttpResponse::Ok().json(res))
}

/// Finishes an MFA login with a TOTP or backup code.
#[utoipa::path(tag = "auth", request_body = MfaTotpRequest,
    responses((status = 200, body = TokenResponse), (status = 400, body = ErrorBody)))]
#[post("/auth/mfa/totp")]
pub async fn login_mfa(
    state: State,
    req: HttpRequest,
    body: Json<MfaTotpRequest>,
) -> ApiResult<HttpResponse> {
    let res = state
        .accounts
        .login_mfa(&body.0.ticket, &body.0.code, &client_ip(&req))
        .await?;
    Ok(HttpResponse::Ok().json(res))
}

/// Rotates a refresh token; reusing a rotated one revokes its whole session.
#[utoipa::path(tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = ErrorBody)))]
#[post("/auth/refresh")]
pub async fn refresh(state: State, body: Json<RefreshRequest>) -> ApiResult<HttpResponse> {
    let res = state.accounts.refresh(&body.0.refresh_token).await?;
    Ok(HttpResponse::Ok().json(res))
}

/// Ends the caller's session.
#[utoipa::path(tag = "auth", request_body = LogoutRequest, responses((status = 204), (status = 401, body = ErrorBody)),
    security(("token" = [])))]
#[post("/auth/logout")]
pub async fn logout(
    state: State,
    who: Authed,
    _body: Json<LogoutRequest>,
) -> ApiResult<HttpResponse> {
    state.accounts.logout(who.0).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Turns on TOTP MFA; answers with a fresh token and single-use backup codes.
#[utoipa::path(tag = "auth", request_body = EnableTotpRequest,
    responses((status = 200, body = EnableTotpResponse), (status = 400, body = ErrorBody)), security(("token" = [])))]
#[post("/users/@me/mfa/totp/enable")]
pub async fn enable_totp(
    state: State,
    who: Authed,
    body: Json<EnableTotpRequest>,
) -> ApiResult<HttpResponse> {
    let b = body.0;
    let res = state
        .accounts
        .enable_totp(who.0, &b.secret, &b.code, b.password)
        .await?;
    Ok(HttpResponse::Ok().json(res))
}

/// Turns off TOTP MFA after one more valid code.
#[utoipa::path(tag = "auth", request_body = DisableTotpRequest,
    responses((status = 200, description = "`{token}`"), (status = 400, body = ErrorBody)), security(("token" = [])))]
#[post("/users/@me/mfa/totp/disable")]
pub async fn disable_totp(
    state: State,
    who: Authed,
    body: Json<DisableTotpRequest>,
) -> ApiResult<HttpResponse> {
    let token = state.accounts.disable_totp(who.0, &body.0.code).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "token": token })))
}
