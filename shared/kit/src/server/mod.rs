//! The gRPC server every service runs: one tower stack, health, reflection, grpc-web,
//! and graceful shutdown. Services hand over their routes and which calls may come
//! without a token; everything else here is the same for all of them.

mod deadline;
mod limit;
mod size;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use http::{HeaderName, HeaderValue, Method};
use tokio_util::sync::CancellationToken;
use tonic::{
    service::Routes,
    transport::{Server, server::TcpIncoming},
};
use tonic_health::{ServingStatus, server::HealthReporter};
use tower_http::{
    classify::{GrpcCode, GrpcErrorsAsFailures, SharedClassifier},
    cors::{AllowOrigin, CorsLayer},
    trace::{DefaultOnFailure, TraceLayer},
};
use tracing::Level;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{
    auth::{AuthLayer, Verifier},
    config::ServerConfig,
    propagation,
    storage::Db,
};

/// What a service contributes to its server.
pub struct ServiceParts {
    /// Short name for logs, e.g. `intake`.
    pub name: &'static str,
    /// Fully qualified gRPC service names reported by health (besides the overall "").
    pub health_names: Vec<&'static str>,
    /// The service's gRPC services (not health or reflection: those are added here).
    pub routes: Routes,
    /// Full paths (`/pkg.Service/Method`) that may be called without a bearer token.
    /// Calls on them never join the caller's trace.
    pub anonymous_paths: Vec<&'static str>,
    /// Paths the server's call time limit does not apply to (uploads of any size).
    pub long_running_paths: Vec<&'static str>,
    /// How often the database is probed for health.
    pub health_check: Duration,
}

/// A bound server, ready to run. Binding happens first so that tests can listen on port
/// 0 and read the real address before serving.
pub struct GrpcServer {
    incoming: TcpIncoming,
    local_addr: SocketAddr,
    config: ServerConfig,
    verifier: Verifier,
    db: Db,
    parts: ServiceParts,
    stopping: CancellationToken,
    health: HealthReporter,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("reflection service")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("gRPC server failed")]
    Transport(#[from] tonic::transport::Error),
}

impl GrpcServer {
    /// Binds the listener. `stopping` is cancelled when shutdown's grace period ends;
    /// long-lived work (feed streams, consumers) watches it.
    pub fn bind(
        config: &ServerConfig,
        verifier: Verifier,
        db: Db,
        parts: ServiceParts,
        stopping: CancellationToken,
        listener: Option<std::net::TcpListener>,
    ) -> Result<Self, ServeError> {
        let bound = match listener {
            // Bound beforehand (the standalone suite binds every service's port before it
            // builds any, so that each can be given the others' addresses).
            Some(listener) => listener
                .set_nonblocking(true)
                .and_then(|()| tokio::net::TcpListener::from_std(listener))
                .map(TcpIncoming::from),
            None => TcpIncoming::bind(config.listen),
        };
        let incoming = bound
            .map_err(|source| ServeError::Bind {
                addr: config.listen,
                source,
            })?
            .with_nodelay(Some(true));
        let local_addr = incoming.local_addr().map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
        let health = HealthReporter::new();
        Ok(Self {
            incoming,
            local_addr,
            config: config.clone(),
            verifier,
            db,
            parts,
            stopping,
            health,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `signal` completes, then shuts down gracefully: health reports
    /// NOT_SERVING at once; after the grace period (load balancers stop sending new
    /// calls meanwhile) long-lived streams end and the listener closes; in-flight calls
    /// get `drain_timeout_secs` to finish.
    pub async fn run_until(
        self,
        signal: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        let Self {
            incoming,
            local_addr,
            config,
            verifier,
            db,
            parts,
            stopping,
            health,
        } = self;
        let domain = crate::error::domain(parts.name);
        let health_service = tonic_health::pb::health_server::HealthServer::new(
            tonic_health::server::HealthService::from_health_reporter(health.clone()),
        );
        let names: Arc<[&'static str]> = parts.health_names.clone().into();
        // Health is known before the first call can arrive.
        let initial = match tokio::time::timeout(parts.health_check, db.ping()).await {
            Ok(Ok(())) => ServingStatus::Serving,
            _ => ServingStatus::NotServing,
        };
        set_all(&health, &names, initial).await;
        // Cancelled as shutdown begins: health must stay NOT_SERVING from then on.
        let draining = CancellationToken::new();
        let monitor = tokio::spawn(monitor_database(
            db,
            health.clone(),
            names.clone(),
            parts.health_check,
            initial,
            draining.clone(),
        ));

        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(custos_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(custos_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;
        let mut routes = parts.routes.into_axum_router();
        routes = Routes::from(routes)
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .into_axum_router();

        let anonymous: Arc<[&'static str]> = parts.anonymous_paths.clone().into();
        let stack = tower::ServiceBuilder::new()
            // CORS first: a browser's preflight OPTIONS is answered here and goes no further.
            .layer(cors(&config))
            // grpc-web → gRPC, so that every layer below sees plain gRPC.
            .layer(tonic_web::GrpcWebLayer::new())
            // One span per call, parented by the caller's W3C trace context, except on
            // calls that may be anonymous: those start a trace of their own, so that an
            // anonymous report cannot be joined with the portal's traces of the session.
            // Client mistakes (bad argument, not found, denied) are not failures;
            // server-side ones are logged at WARN. No peer address, header or identity
            // is recorded here.
            .layer(
                TraceLayer::new(SharedClassifier::new(classifier()))
                    .make_span_with(move |request: &http::Request<_>| {
                        let path = request.uri().path();
                        let span = tracing::info_span!(
                            "rpc",
                            otel.kind = "server",
                            rpc.method = %path,
                        );
                        if !anonymous.contains(&path) {
                            let _ = span.set_parent(propagation::extract(request.headers()));
                        }
                        span
                    })
                    .on_failure(DefaultOnFailure::new().level(Level::WARN)),
            )
            // Duration of every call by method and status (after the trace layer, so the
            // measurement runs inside the call's span). Only known methods get a label of
            // their own: a caller cannot create labels at will.
            .layer(crate::metrics::RpcMetricsLayer::new())
            // Load shedding before any work: past `max_concurrent_requests` calls in
            // flight, new ones fail fast with RESOURCE_EXHAUSTED instead of queueing.
            // Health checks are exempt (see `limit`).
            .layer(limit::InFlightLimitLayer::new(
                config.max_concurrent_requests,
                domain,
            ))
            // Oversized request messages are refused with RESOURCE_EXHAUSTED as their
            // frame header arrives, before anything is buffered.
            .layer(size::MessageSizeLayer::new(
                config.max_message_bytes,
                domain,
            ))
            // The server's limit on a call's time, but for long-running uploads (a
            // client's shorter `grpc-timeout`, which tonic enforces, wins everywhere).
            .layer(deadline::DeadlineLayer::new(
                Duration::from_secs(config.request_timeout_secs),
                &parts.long_running_paths,
                domain,
            ))
            // Authentication last, right before the handlers, so that shed or
            // malformed calls cost no signature check.
            .layer(AuthLayer::new(verifier, &parts.anonymous_paths, domain));

        let stop_accepting = {
            let stopping = stopping.clone();
            let draining = draining.clone();
            let health = health.clone();
            let grace = Duration::from_secs(config.shutdown_grace_secs);
            let name = parts.name;
            async move {
                signal.await;
                draining.cancel();
                tracing::info!(
                    service = name,
                    grace_secs = grace.as_secs(),
                    "shutting down: reporting NOT_SERVING"
                );
                set_all(&health, &names, ServingStatus::NotServing).await;
                if !grace.is_zero() {
                    tokio::time::sleep(grace).await;
                }
                tracing::info!(
                    service = name,
                    "ending feed streams, closing the listener and draining in-flight calls"
                );
                stopping.cancel();
            }
        };

        let server = Server::builder()
            // grpc-web from browsers speaks HTTP/1.1.
            .accept_http1(true)
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .layer(stack)
            .add_routes(Routes::from(routes))
            .serve_with_incoming_shutdown(incoming, stop_accepting);
        tracing::info!(service = parts.name, address = %local_addr, "serving gRPC");

        let drain = Duration::from_secs(config.drain_timeout_secs);
        let drained = stopping.clone();
        let result = tokio::select! {
            result = server => result.map_err(ServeError::from),
            _ = async { drained.cancelled().await; tokio::time::sleep(drain).await } => {
                tracing::warn!(service = parts.name, timeout_secs = drain.as_secs(), "in-flight calls did not finish in time; stopping anyway");
                Ok(())
            }
        };
        stopping.cancel();
        monitor.abort();
        tracing::info!(service = parts.name, "stopped");
        result
    }
}

fn classifier() -> GrpcErrorsAsFailures {
    [
        GrpcCode::Cancelled,
        GrpcCode::InvalidArgument,
        GrpcCode::DeadlineExceeded,
        GrpcCode::NotFound,
        GrpcCode::AlreadyExists,
        GrpcCode::PermissionDenied,
        GrpcCode::FailedPrecondition,
        GrpcCode::Aborted,
        GrpcCode::OutOfRange,
        GrpcCode::Unauthenticated,
    ]
    .into_iter()
    .fold(
        GrpcErrorsAsFailures::new(),
        GrpcErrorsAsFailures::with_success,
    )
}

fn cors(config: &ServerConfig) -> CorsLayer {
    let origins = &config.cors_allowed_origins;
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    let header = HeaderName::from_static;
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers([
            header("content-type"),
            header("authorization"),
            header("x-grpc-web"),
            header("x-user-agent"),
            header("grpc-timeout"),
            header("traceparent"),
            header("tracestate"),
        ])
        .expose_headers([
            header("grpc-status"),
            header("grpc-message"),
            header("grpc-status-details-bin"),
        ])
        .max_age(Duration::from_secs(600))
}

async fn set_all(health: &HealthReporter, names: &[&'static str], status: ServingStatus) {
    health.set_service_status("", status).await;
    for name in names {
        health.set_service_status(*name, status).await;
    }
}

/// Reports SERVING while the database answers and NOT_SERVING while it does not.
async fn monitor_database(
    db: Db,
    health: HealthReporter,
    names: Arc<[&'static str]>,
    every: Duration,
    initial: ServingStatus,
    stopping: CancellationToken,
) {
    let mut healthy = Some(initial == ServingStatus::Serving);
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stopping.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let ok = matches!(
            tokio::time::timeout(every.max(Duration::from_secs(1)), db.ping()).await,
            Ok(Ok(()))
        );
        if stopping.is_cancelled() {
            return;
        }
        if healthy != Some(ok) {
            if ok {
                tracing::info!("database reachable: SERVING");
            } else {
                tracing::error!("database unreachable: NOT_SERVING");
            }
            let status = if ok {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            set_all(&health, &names, status).await;
            healthy = Some(ok);
        }
    }
}
