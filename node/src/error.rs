//! The one place API errors become HTTP responses, and the body extractors that turn bad
//! input into Discord's error bodies instead of actix's plain-text ones.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use enrichment_protocol::{ApiError, ErrorCode, FormErrors};
use futures::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

/// An [`ApiError`] as an actix error.
#[derive(Debug)]
pub struct HttpError(pub ApiError);

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl ResponseError for HttpError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(&self.0.body)
    }
}

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        HttpError(e)
    }
}

pub type ApiResult<T> = Result<T, HttpError>;

/// Maps a serde error at a JSON path to a 50035 form error, Discord style.
fn form_error_from_path(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let segments: Vec<String> = err
        .path()
        .iter()
        .filter_map(|seg| match seg {
            serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
            serde_path_to_error::Segment::Map { key } => Some(key.clone()),
            serde_path_to_error::Segment::Enum { variant } => Some(variant.clone()),
            serde_path_to_error::Segment::Unknown => None,
        })
        .collect();
    let inner = err.into_inner();
    if inner.is_syntax() || inner.is_eof() {
        return ApiError::invalid_json();
    }
    let refs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let message = inner.to_string();
    let code = if message.contains("missing field") {
        "BASE_TYPE_REQUIRED"
    } else if message.contains("snowflake") {
        "NUMBER_TYPE_COERCE"
    } else {
        "BASE_TYPE_INVALID"
    };
    // serde reports a missing field at its parent: name the field itself, as Discord does.
    let mut e = FormErrors::default();
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|m| m.split('`').next())
    {
        let mut full = refs.clone();
        full.push(field);
        e.add(&full, code, "This field is required");
    } else {
        e.add(&refs, code, strip_position(&message));
    }
    e.into_error()
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Parses JSON from bytes with per-field errors; an empty body reads as `{}`.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(de).map_err(form_error_from_path)?;
    Ok(value)
}

/// A JSON body with Discord-style errors and a size limit taken from [`BodyLimit`].
#[derive(Debug)]
pub struct Json<T>(pub T);

/// The largest body a JSON route accepts.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = HttpError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let limit = req
            .app_data::<BodyLimit>()
            .map(|l| l.0)
            .unwrap_or(256 * 1024);
        let content_type = json_content_type(req);
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            content_type?;
            let bytes = body
                .await
                .map_err(|_| HttpError(payload_too_large(limit)))?;
            if bytes.len() > limit {
                return Err(HttpError(payload_too_large(limit)));
            }
            parse_json(&bytes).map(Json).map_err(HttpError)
        })
    }
}

/// A body that names a content type must name JSON.
fn json_content_type(req: &HttpRequest) -> Result<(), HttpError> {
    let content_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    match content_type {
        Some(ct) if ct != "application/json" => Err(HttpError(ApiError::form(
            &["content_type"],
            "CONTENT_TYPE_INVALID",
            "Expected application/json",
        ))),
        _ => Ok(()),
    }
}

/// [`Json`] for a route whose bodies may outgrow the others' limit (an emoji's image): reads
/// the raw payload up to `limit` bytes, refusing at the first byte past it.
pub async fn json_up_to<T: DeserializeOwned>(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<T, HttpError> {
    use futures::StreamExt;
    json_content_type(req)?;
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| HttpError(payload_too_large(limit)))?;
        if body.len() + chunk.len() > limit {
            return Err(HttpError(payload_too_large(limit)));
        }
        body.extend_from_slice(&chunk);
    }
    parse_json(&body).map_err(HttpError)
}

pub fn payload_too_large(limit: usize) -> ApiError {
    ApiError::new(
        413,
        ErrorCode::General,
        format!("Request entity too large (limit {limit} bytes)"),
    )
}

/// Handlers for actix's own extractor failures, so they answer with Discord bodies too.
pub fn path_error(err: actix_web::error::PathError, _req: &HttpRequest) -> actix_web::Error {
    let message = strip_position(&err.to_string());
    let message = message.rsplit(": ").next().unwrap_or(&message).to_owned();
    HttpError(ApiError::form(&["path"], "NUMBER_TYPE_COERCE", message)).into()
}

pub fn query_error(
    err: actix_web::error::QueryPayloadError,
    _req: &HttpRequest,
) -> actix_web::Error {
    let message = err.to_string();
    let field = message
        .split('`')
        .nth(1)
        .map(str::to_owned)
        .unwrap_or_else(|| "query".to_owned());
    HttpError(ApiError::form(
        &[&field],
        "BASE_TYPE_INVALID",
        strip_position(&message),
    ))
    .into()
}

pub fn payload_config_limit(limit: usize) -> web::PayloadConfig {
    web::PayloadConfig::new(limit)
}

#[cfg(test)]
mod tests {
    use enrichment_protocol::rest::CreateChannel;

    use super::*;

    #[test]
    fn json_errors_map_to_discord_codes() {
        let syntax = parse_json::<CreateChannel>(b"{nope").unwrap_err();
        assert_eq!(syntax.code(), 50109);
        let missing = parse_json::<CreateChannel>(b"{}").unwrap_err();
        assert_eq!(missing.code(), 50035);
        let body = serde_json::to_value(&missing.body).unwrap();
        assert_eq!(
            body["errors"]["name"]["_errors"][0]["code"],
            "BASE_TYPE_REQUIRED"
        );
        let wrong = parse_json::<CreateChannel>(br#"{"name":"x","nsfw":"yes"}"#).unwrap_err();
        let body = serde_json::to_value(&wrong.body).unwrap();
        assert_eq!(
            body["errors"]["nsfw"]["_errors"][0]["code"],
            "BASE_TYPE_INVALID"
        );
        let nested = parse_json::<CreateChannel>(br#"{"name":"x","permission_overwrites":[{"id":"abc","type":0,"allow":"0","deny":"0"}]}"#).unwrap_err();
        let body = serde_json::to_value(&nested.body).unwrap();
        assert!(
            body["errors"]["permission_overwrites"]["0"]["id"]["_errors"].is_array(),
            "{body}"
        );
        assert!(parse_json::<CreateChannel>(br#"{"name":"ok"}"#).is_ok());
    }
}
