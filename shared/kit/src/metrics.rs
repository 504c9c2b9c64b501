//! RPC metrics for every service: `rpc.server.call.duration` (seconds), by method and
//! gRPC status, recorded through the global OpenTelemetry meter (a no-op when metrics
//! export is off). The status is read from the response headers, where tonic puts it for
//! every failed unary call; calls that end in trailers count as OK.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use opentelemetry::{
    KeyValue, global,
    metrics::{Histogram, Meter},
};

#[derive(Clone)]
pub struct RpcMetricsLayer {
    duration: Histogram<f64>,
}

impl std::fmt::Debug for RpcMetricsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RpcMetricsLayer")
    }
}

impl RpcMetricsLayer {
    /// Records through the global meter provider (set up by `telemetry`).
    pub fn new() -> Self {
        Self::with_meter(&global::meter("custos"))
    }

    pub fn with_meter(meter: &Meter) -> Self {
        let duration = meter
            .f64_histogram("rpc.server.call.duration")
            .with_unit("s")
            .with_description("Duration of gRPC calls until the response headers")
            .build();
        Self { duration }
    }
}

impl Default for RpcMetricsLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics {
            inner,
            duration: self.duration.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RpcMetrics<S> {
    inner: S,
    duration: Histogram<f64>,
}

impl<S, B, RB> tower::Service<http::Request<B>> for RpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Error: AsRef<dyn std::error::Error + Send + Sync + 'static>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let started = Instant::now();
        let duration = self.duration.clone();
        let future = self.inner.call(request);
        Box::pin(async move {
            let result = future.await;
            let status = match &result {
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("0")
                    .to_owned(),
                // A layer below refused the call (a shed call carries its status).
                Err(error) => {
                    let code = error
                        .as_ref()
                        .downcast_ref::<tonic::Status>()
                        .map_or(tonic::Code::Unknown, tonic::Status::code);
                    (code as i32).to_string()
                }
            };
            duration.record(
                started.elapsed().as_secs_f64(),
                &[
                    KeyValue::new("rpc.method", method),
                    KeyValue::new("rpc.grpc.status_code", status),
                ],
            );
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::metrics::{
        InMemoryMetricExporter, PeriodicReader, SdkMeterProvider,
        data::{AggregatedMetrics, MetricData},
    };
    use tower::{Layer, ServiceExt};

    use super::*;

    /// The (method, status) of every call recorded.
    fn recorded(exporter: &InMemoryMetricExporter) -> Vec<(String, String)> {
        let mut calls = Vec::new();
        for resource in exporter.get_finished_metrics().unwrap() {
            for scope in resource.scope_metrics() {
                for metric in scope.metrics() {
                    let AggregatedMetrics::F64(MetricData::Histogram(h)) = metric.data() else {
                        continue;
                    };
                    for point in h.data_points() {
                        let get = |key: &str| {
                            point
                                .attributes()
                                .find(|kv| kv.key.as_str() == key)
                                .map(|kv| kv.value.to_string())
                                .unwrap_or_default()
                        };
                        calls.push((get("rpc.method"), get("rpc.grpc.status_code")));
                    }
                }
            }
        }
        calls
    }

    /// A call refused below this layer (load shedding) counts with its own status, not as
    /// UNKNOWN; a failed unary call counts with the status tonic put in its headers.
    #[tokio::test]
    async fn calls_count_with_their_grpc_status() {
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        let layer = RpcMetricsLayer::with_meter(&provider.meter("test"));
        let request = |method: &str| http::Request::builder().uri(method).body(()).unwrap();

        let shed = layer.layer(tower::service_fn(|_: http::Request<()>| async {
            Err::<http::Response<()>, tower::BoxError>(Box::new(tonic::Status::resource_exhausted(
                "at the limit",
            )))
        }));
        shed.oneshot(request("/a.A/Shed")).await.unwrap_err();
        let not_found = layer.layer(tower::service_fn(|_: http::Request<()>| async {
            let response = http::Response::builder()
                .header("grpc-status", "5")
                .body(())
                .unwrap();
            Ok::<_, tower::BoxError>(response)
        }));
        not_found.oneshot(request("/a.A/Get")).await.unwrap();

        provider.force_flush().unwrap();
        let mut calls = recorded(&exporter);
        calls.sort();
        assert_eq!(
            calls,
            [
                ("/a.A/Get".to_owned(), "5".to_owned()),
                ("/a.A/Shed".to_owned(), "8".to_owned())
            ]
        );
    }
}
