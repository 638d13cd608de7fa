//! The Wyoming listener: one TCP port for every service, on top of [`wyoming::serve`].

pub mod dispatch;
pub mod intent;
mod session;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use wyoming::{ServeReport, ServerConfig};

use crate::services::Services;

/// Serves Wyoming on `listener` until `shutdown`, then drains connections within the grace period.
pub async fn run(
    listener: TcpListener,
    config: ServerConfig,
    services: Arc<Services>,
    shutdown: CancellationToken,
) -> ServeReport {
    wyoming::serve(listener, config, shutdown, move |conn| {
        session::run(conn, Arc::clone(&services))
    })
    .await
}
