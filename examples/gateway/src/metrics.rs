//! `GET /metrics`: the cache's metrics and the gateway's own HTTP figures in
//! Prometheus' text format, through the `metrics` facade's Prometheus
//! exporter. The facade has one recorder per process, so every gateway in a
//! process shares it (and its figures).

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::error::ApiError;

/// The buckets of every histogram, in seconds: from 100 µs (a local-tier
/// hit) to 5 s (a slow database).
const BUCKETS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

static EXPORTER: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// The process's Prometheus recorder, installed on first use. The cache
/// registers its counters when its views are made, so this runs first.
pub(crate) fn exporter() -> Result<&'static PrometheusHandle, &'static str> {
    let installed = EXPORTER.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(&BUCKETS)
            .map_err(|err| format!("bad histogram buckets: {err}"))?;
        builder
            .install_recorder()
            .map_err(|err| format!("cannot install the Prometheus recorder: {err}"))
    });
    installed.as_ref().map_err(String::as_str)
}

/// Counts each request, and its latency, by route (the pattern, never the
/// path: a model name is not a label), method and status.
pub(crate) async fn track(request: Request, next: Next) -> Response {
    let route = match request.extensions().get::<MatchedPath>() {
        Some(path) => path.as_str().to_owned(),
        None => "unmatched".to_owned(),
    };
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [("route", route), ("method", method), ("status", status)];
    metrics::counter!("gateway_http_requests_total", &labels).increment(1);
    metrics::histogram!("gateway_http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`.
pub(crate) async fn render() -> Response {
    match exporter() {
        Ok(handle) => {
            let text_format = [(header::CONTENT_TYPE, "text/plain; version=0.0.4")];
            (text_format, handle.render()).into_response()
        }
        Err(err) => ApiError::with_status(StatusCode::SERVICE_UNAVAILABLE, err).into_response(),
    }
}
