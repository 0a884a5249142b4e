//! Operational endpoints and middleware: health, readiness, Prometheus metrics, the OpenAPI
//! document, per-request tracing spans and HTTP metrics, and the JSON 404.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, get, web};
use enrichment_protocol::Snowflake;
use tracing::Instrument;

use crate::admin::AdminState;
use crate::state::State;

#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Ready when the store answers a read, the node is not draining and it still holds its
/// snowflake id pair; also reports this node's running guild actors.
#[get("/readyz")]
pub async fn readyz(state: State, admin: web::Data<AdminState>) -> HttpResponse {
    if admin.lease_lost.now().is_some() {
        return HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({ "status": "id_lease_lost" }));
    }
    if admin.gateway.is_draining() {
        return HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({ "status": "draining" }));
    }
    match state.guilds.stores.guilds.user_guilds(Snowflake(0)).await {
        Ok(_) => HttpResponse::Ok().json(serde_json::json!({
            "status": "ready",
            "guild_actors": state.router.local_actor_count(),
        })),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            HttpResponse::ServiceUnavailable().json(serde_json::json!({ "status": "unavailable" }))
        }
    }
}

#[get("/metrics")]
pub async fn prometheus(state: State) -> HttpResponse {
    metrics::gauge!("enrichment_guild_actors_local").set(state.router.local_actor_count() as f64);
    crate::gateway::publish_counters();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

#[get("/openapi.json")]
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(crate::openapi::json())
}

pub async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(serde_json::json!({ "message": "404: Not Found", "code": 0 }))
}

/// The request path as logs may show it: a webhook's token (`/webhooks/{id}/{token}...`) is
/// its whole authority, so it is replaced by `***`.
fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    let mut segments: Vec<&str> = path.split('/').collect();
    let Some(at) = segments.iter().position(|s| *s == "webhooks") else {
        return path.into();
    };
    if segments.len() > at + 2 && !segments[at + 2].is_empty() {
        segments[at + 2] = "***";
        return segments.join("/").into();
    }
    path.into()
}

/// Opens a span per request and records request counts and latencies by route and status.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    let path = loggable_path(req.path());
    let span = tracing::info_span!("http", %method, %path, user_id = tracing::field::Empty, status = tracing::field::Empty);
    let res = next.call(req).instrument(span.clone()).await?;
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let status = res.status().as_u16();
    span.record("status", status);
    let elapsed = started.elapsed().as_secs_f64();
    metrics::counter!("enrichment_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!("enrichment_http_request_seconds", "method" => method.clone(), "route" => route.clone()).record(elapsed);
    if status >= 500 {
        tracing::error!(parent: &span, %method, %route, status, elapsed, "request failed");
    } else {
        tracing::debug!(parent: &span, %method, %route, status, elapsed, "request");
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::loggable_path;

    #[test]
    fn a_webhook_token_never_reaches_the_logs() {
        assert_eq!(
            loggable_path("/api/v10/webhooks/123/s3cr3t-token"),
            "/api/v10/webhooks/123/***"
        );
        assert_eq!(
            loggable_path("/api/webhooks/123/s3cr3t/messages/9"),
            "/api/webhooks/123/***/messages/9"
        );
        assert_eq!(
            loggable_path("/api/v10/webhooks/123"),
            "/api/v10/webhooks/123"
        );
        assert_eq!(
            loggable_path("/api/v10/channels/1/messages"),
            "/api/v10/channels/1/messages"
        );
    }
}
