//! The HTTP API. For now `GET /health`; `/v1/command` arrives with the intent engine.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::services::{ServiceState, Services};

/// Shared state of the HTTP handlers.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The Wyoming services, for their health.
    pub services: Arc<Services>,
}

/// The API's routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/health", get(health))
        .with_state(state)
}

/// Body of `GET /health`.
#[derive(Debug, Serialize)]
struct Health {
    /// `ok` while the process serves requests.
    status: &'static str,
    version: &'static str,
    services: Vec<ServiceHealth>,
}

#[derive(Debug, Serialize)]
struct ServiceHealth {
    name: &'static str,
    ready: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

async fn health(State(state): State<ApiState>) -> Json<Health> {
    let services = state
        .services
        .all()
        .into_iter()
        .map(|(route, service)| ServiceHealth {
            name: route.service_name(),
            ready: service == ServiceState::Ready,
            reason: match service {
                ServiceState::Ready => None,
                ServiceState::Unavailable { reason } => Some(reason),
            },
        })
        .collect();
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        services,
    })
}
