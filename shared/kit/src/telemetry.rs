//! Logging and OpenTelemetry. Logs are plain or JSON; traces and metrics are exported
//! over OTLP/gRPC when the standard `OTEL_EXPORTER_OTLP_*ENDPOINT` variables say where
//! (and `OTEL_SDK_DISABLED` is not `true`), and are off otherwise. W3C trace context is
//! the global propagator. The returned guard flushes everything on shutdown.

use opentelemetry::{global, propagation::TextMapCompositePropagator, trace::TracerProvider as _};
use opentelemetry_sdk::{
    Resource, metrics::SdkMeterProvider, propagation::TraceContextPropagator, runtime,
    trace::SdkTracerProvider,
};
use tracing_subscriber::{EnvFilter, Layer as _, layer::SubscriberExt, util::SubscriberInitExt};

use crate::config::{LogFormat, TelemetryConfig};

/// Keeps the providers alive; `shutdown` flushes what is buffered.
#[derive(Debug)]
pub struct TelemetryGuard {
    tracer_provider: SdkTracerProvider,
    meter_provider: Option<SdkMeterProvider>,
}

fn env_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

fn otlp_enabled(signal: &str) -> bool {
    if std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true")) {
        return false;
    }
    let exporter = format!("OTEL_{}_EXPORTER", signal.to_uppercase());
    if std::env::var(&exporter).is_ok_and(|v| v.eq_ignore_ascii_case("none")) {
        return false;
    }
    env_set("OTEL_EXPORTER_OTLP_ENDPOINT")
        || env_set(&format!(
            "OTEL_EXPORTER_OTLP_{}_ENDPOINT",
            signal.to_uppercase()
        ))
}

fn resource(service_name: &str) -> Resource {
    let builder = Resource::builder();
    // OTEL_SERVICE_NAME, when set, wins over the built-in name.
    if env_set("OTEL_SERVICE_NAME") {
        builder.build()
    } else {
        builder.with_service_name(service_name.to_owned()).build()
    }
}

/// Installs the global subscriber, tracer and meter providers. Call once, inside a Tokio
/// runtime (the OTLP exporters need one).
pub fn init(service_name: &str, config: &TelemetryConfig) -> Result<TelemetryGuard, String> {
    global::set_text_map_propagator(TextMapCompositePropagator::new(vec![Box::new(
        TraceContextPropagator::new(),
    )]));

    let mut tracer_builder = SdkTracerProvider::builder().with_resource(resource(service_name));
    if otlp_enabled("traces") {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
            .map_err(|e| format!("OTLP trace exporter: {e}"))?;
        let processor = opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
            exporter,
            runtime::Tokio,
        )
        .build();
        tracer_builder = tracer_builder.with_span_processor(processor);
    }
    // Spans get real trace ids even with export off, so trace context still propagates.
    let tracer_provider = tracer_builder.build();
    global::set_tracer_provider(tracer_provider.clone());

    let meter_provider = if otlp_enabled("metrics") {
        let exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .build()
            .map_err(|e| format!("OTLP metric exporter: {e}"))?;
        let reader = opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader::builder(
            exporter,
            runtime::Tokio,
        )
        .build();
        let provider = SdkMeterProvider::builder()
            .with_resource(resource(service_name))
            .with_reader(reader)
            .build();
        global::set_meter_provider(provider.clone());
        Some(provider)
    } else {
        None
    };

    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => EnvFilter::try_new(directives),
        _ => EnvFilter::try_new(&config.log_filter),
    }
    .map_err(|e| format!("log filter: {e}"))?;
    let fmt_layer = match config.log_format {
        LogFormat::Plain => tracing_subscriber::fmt::layer().with_target(true).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed(),
    };
    let otel_layer =
        tracing_opentelemetry::layer().with_tracer(tracer_provider.tracer(service_name.to_owned()));
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer)
        .with(otel_layer)
        .try_init()
        .map_err(|e| format!("tracing subscriber: {e}"))?;

    Ok(TelemetryGuard {
        tracer_provider,
        meter_provider,
    })
}

impl TelemetryGuard {
    /// Flushes and stops the exporters. The SDK's shutdown blocks, so it runs on the
    /// blocking pool (on a current-thread runtime it would otherwise never finish).
    pub async fn shutdown(self) {
        let Self {
            tracer_provider,
            meter_provider,
        } = self;
        let result = tokio::task::spawn_blocking(move || {
            let traces = tracer_provider.shutdown();
            let metrics = meter_provider.map(|m| m.shutdown());
            (traces, metrics)
        })
        .await;
        match result {
            Ok((Err(e), _)) => tracing::warn!(error = %e, "trace export shutdown failed"),
            Ok((_, Some(Err(e)))) => tracing::warn!(error = %e, "metric export shutdown failed"),
            Err(e) => tracing::warn!(error = %e, "telemetry shutdown task failed"),
            _ => {}
        }
    }
}
