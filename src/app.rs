//! Start-up and shutdown: bind the listeners, run every subsystem, stop them all on a signal.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Config;
use crate::http_api::{self, ApiState};
use crate::panel::{self, PanelState};
use crate::services::Services;
use crate::{wyoming_server, zeroconf};

/// A running Jarvis, as tests and `main` see it.
#[derive(Debug)]
pub struct App {
    /// Where Wyoming is served (the real port when the config asked for port 0).
    pub wyoming_addr: SocketAddr,
    /// Where the HTTP API is served, if enabled.
    pub http_addr: Option<SocketAddr>,
    /// The loaded services (for health and statistics).
    pub services: Arc<Services>,
    /// The MQTT connection, if MQTT is enabled.
    pub mqtt: Option<tokio::sync::watch::Receiver<crate::mqtt::LinkState>>,
    /// Cancel to shut everything down.
    pub shutdown: CancellationToken,
    /// Finishes when every subsystem has stopped.
    pub finished: JoinHandle<anyhow::Result<()>>,
}

/// Binds the listeners and starts every subsystem in the background.
///
/// # Errors
/// When a listener cannot be bound; the message says which address and what to do.
pub async fn spawn(config: Config) -> anyhow::Result<App> {
    let shutdown = CancellationToken::new();
    // Model loading reads hundreds of MB from disk: keep it off the async workers.
    let services = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || Services::load(&config))
            .await
            .context("service loading panicked")??
    };
    let services = Arc::new(services);

    let wyoming_listener = TcpListener::bind(config.wyoming.addr).await.with_context(|| {
        format!(
            "cannot listen for Wyoming on {}: is another Jarvis or Wyoming server using the port? \
             Choose another with --wyoming-addr or wyoming.addr",
            config.wyoming.addr
        )
    })?;
    let wyoming_addr = wyoming_listener.local_addr()?;

    let http_listener = if config.http.enabled {
        let listener = TcpListener::bind(config.http.addr).await.with_context(|| {
            format!(
                "cannot listen for HTTP on {}: choose another address with --http-addr or \
                 http.addr, or set http.enabled = false",
                config.http.addr
            )
        })?;
        Some(listener)
    } else {
        None
    };
    if config.http.enabled && config.http.api_key.is_empty() {
        warn!(
            "http.api_key is empty: anyone who can reach {} may send commands; set \
             JARVIS_HTTP_API_KEY (or http.api_key) unless this network is trusted",
            config.http.addr
        );
    }
    let http_addr = http_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;

    if !config.models.dir.is_dir() {
        warn!(
            dir = %config.models.dir.display(),
            "models directory does not exist; set --models-dir or models.dir"
        );
    }

    // One name for the zeroconf records and `/health`: the HACS integration keys its entry on it.
    let instance = config
        .wyoming
        .zeroconf
        .name
        .clone()
        .unwrap_or_else(zeroconf::default_instance_name);
    let advertisements = if config.wyoming.zeroconf.enabled {
        zeroconf::advertise_jarvis(&instance, wyoming_addr, http_addr)
    } else {
        Vec::new()
    };

    // With the brain lease, every MQTT client id names this brain (two brains, one broker).
    let lease = &config.mqtt.lease;
    let lease_instance = lease.instance_or(&instance);
    let mqtt_config = if lease.enabled {
        crate::mqtt::standby::with_instance_ids(&config.mqtt, &lease_instance)
    } else {
        config.mqtt.clone()
    };
    // What the publisher shows besides the cluster: the event memory, the speech backends.
    let feeds = || crate::mqtt::Feeds {
        events: services
            .brain
            .memory()
            .map(crate::mqtt::EventFeed::from_memory),
        backends: [
            &services.stt_backends,
            &services.tts_backends,
            &services.wake_backends,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect(),
    };
    // Before any other task starts: a bad mqtt.ca_file stops start-up here.
    let mqtt = if config.mqtt.enabled && lease.enabled {
        let brain = &services.brain;
        let handle = crate::mqtt::standby::spawn(
            mqtt_config.settings(),
            &lease_instance,
            std::time::Duration::from_secs(lease.lease_secs),
            Arc::clone(brain),
            Arc::clone(brain),
            feeds(),
            shutdown.child_token(),
        )
        .context("cannot start the MQTT publisher")?;
        if let Some(view) = &handle.lease {
            brain.set_lease(view.clone());
        }
        Some(handle)
    } else if config.mqtt.enabled {
        let brain = &services.brain;
        let handle = crate::mqtt::spawn_publisher(
            config.mqtt.settings(),
            Arc::clone(brain),
            Arc::clone(brain),
            feeds(),
            shutdown.child_token(),
            None,
        )
        .context("cannot start the MQTT publisher")?;
        Some(handle)
    } else {
        None
    };
    // Frigate into the event memory; fails only on settings that cannot work (a username
    // without a password, an unreadable CA file).
    let frigate = if config.frigate.enabled {
        let handle = crate::frigate::spawn(
            &config.frigate,
            &mqtt_config,
            services.events.clone(),
            Arc::clone(&services.frigate_status),
            services.frigate.arrivals.clone(),
            shutdown.child_token(),
        )
        .context("cannot start following Frigate")?;
        Some(handle)
    } else {
        None
    };
    // Remote speech-to-text backends: `describe` every few seconds until shutdown.
    let backend_health: Vec<_> = [
        &services.stt_backends,
        &services.tts_backends,
        &services.wake_backends,
    ]
    .into_iter()
    .flatten()
    .map(|backends| backends.spawn_health(shutdown.child_token()))
    .collect();
    // Backends given by zeroconf: browse `_wyoming._tcp` and point them at what is found.
    let backend_sets: Vec<_> = [
        &services.stt_backends,
        &services.tts_backends,
        &services.wake_backends,
    ]
    .into_iter()
    .flatten()
    .cloned()
    .collect();
    let discovery = crate::discovery::wanted(backend_sets.iter().map(|b| &**b))
        .then(|| crate::discovery::spawn(backend_sets, instance.clone(), shutdown.child_token()));
    // The speech grammar follows the cluster's names, built in the background as each new
    // inventory arrives, so that no speech request waits for it.
    let grammar_upkeep = (services.stt.is_some() && config.stt.grammar.enabled)
        .then(|| services.brain.spawn_grammar_upkeep(shutdown.child_token()))
        .flatten();
    let wyoming_task = tokio::spawn(wyoming_server::run(
        wyoming_listener,
        config.wyoming.server_config(),
        Arc::clone(&services),
        shutdown.child_token(),
    ));
    let http_task = http_listener.map(|listener| {
        let mut state = ApiState::new(Arc::clone(&services), &config.http).with_instance(&instance);
        if let Some(mqtt) = &mqtt {
            state = state.with_mqtt(mqtt.link.clone());
        }
        if let Some(frigate) = &frigate {
            state = state.with_frigate(frigate.watch_stats());
        }
        let mut router = http_api::router(state);
        if config.panel.enabled {
            let panel = PanelState::new(Arc::clone(&services), &config, shutdown.child_token());
            router = router.merge(panel::router(panel));
        }
        let token = shutdown.child_token();
        tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(token.cancelled_owned())
            .await
        })
    });
    let mqtt_link = mqtt.as_ref().map(|m| m.link.clone());
    let http_shown = http_addr.map_or_else(|| "disabled".to_owned(), |addr| addr.to_string());
    info!(wyoming = %wyoming_addr, http = %http_shown, "jarvis is serving");

    let grace = config.wyoming.server_config().shutdown_grace;
    let finished = tokio::spawn(async move {
        let report = wyoming_task.await.context("wyoming server task failed")?;
        info!(
            accepted = report.accepted,
            rejected = report.rejected,
            unfinished = report.unfinished,
            "wyoming server stopped"
        );
        if let Some(http) = http_task {
            match tokio::time::timeout(grace, http).await {
                Ok(joined) => joined
                    .context("http task failed")?
                    .context("http server failed")?,
                Err(_) => warn!(?grace, "http requests still open after the grace period"),
            }
        }
        if let Some(mqtt) = mqtt {
            // Says `offline` and disconnects; bounded inside.
            mqtt.join().await;
        }
        if let Some(frigate) = frigate {
            if tokio::time::timeout(grace, frigate.join()).await.is_err() {
                warn!(?grace, "the Frigate subscriber did not stop in time");
            }
        }
        for health in backend_health {
            let _ = tokio::time::timeout(grace, health.wait()).await;
        }
        if let Some(upkeep) = grammar_upkeep {
            let _ = tokio::time::timeout(grace, upkeep).await;
        }
        if let Some(discovery) = discovery {
            let _ = tokio::time::timeout(grace, discovery).await;
        }
        // Withdrawing the record joins the avahi thread: keep that off the async workers.
        let _ = tokio::task::spawn_blocking(move || drop(advertisements)).await;
        Ok(())
    });

    Ok(App {
        wyoming_addr,
        http_addr,
        services,
        mqtt: mqtt_link,
        shutdown,
        finished,
    })
}

/// Runs until SIGINT or SIGTERM, then shuts down gracefully.
///
/// # Errors
/// Start-up failures (see [`spawn`]) and subsystem failures.
pub async fn run(config: Config) -> anyhow::Result<()> {
    // Each connection is a file descriptor; the common soft limit of 1024 is too low for a
    // server whose connection limit is configurable. Raise it to the hard limit.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open file limit"),
        Err(err) => warn!(cause = %err, "cannot raise the open file limit"),
    }
    // Listening before anything is served: a SIGTERM that comes while jarvis starts (or just
    // after it logs that it serves) must stop it gracefully, not kill it the default way.
    let mut signals = StopSignals::listen();
    let app = spawn(config).await?;
    let shutdown = app.shutdown.clone();
    tokio::spawn(async move {
        signals.next().await;
        info!("shutting down; finishing replies in flight (signal again to stop at once)");
        shutdown.cancel();
        signals.next().await;
        warn!("second signal; exiting now");
        std::process::exit(130);
    });
    app.finished.await.context("jarvis main task failed")?
}

/// Ctrl-C and SIGTERM (what `docker stop` and systemd send), registered when created.
struct StopSignals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let listen = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(signal) => Some(signal),
                Err(err) => {
                    warn!(cause = %err, "cannot listen for {name}; it stops jarvis abruptly");
                    None
                }
            };
            Self {
                interrupt: listen(SignalKind::interrupt(), "SIGINT"),
                terminate: listen(SignalKind::terminate(), "SIGTERM"),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// Waits for the next stop signal (forever when none can be listened for).
    async fn next(&mut self) {
        #[cfg(unix)]
        {
            async fn recv(signal: Option<&mut tokio::signal::unix::Signal>) {
                match signal {
                    Some(signal) => {
                        if signal.recv().await.is_none() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                () = recv(self.interrupt.as_mut()) => {}
                () = recv(self.terminate.as_mut()) => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
