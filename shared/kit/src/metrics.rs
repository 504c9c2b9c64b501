//! RPC metrics for every service: `rpc.server.call.duration` (seconds), by method and
//! gRPC status, recorded through the global OpenTelemetry meter (a no-op when metrics
//! export is off). The status is read from the response headers, where tonic puts it for
//! every failed unary call; calls that end in trailers count as OK. A method label is one
//! of the methods custos defines (or health and reflection); any other path counts as
//! `unknown`, so that a caller without a token cannot create labels at will.

use std::{
    collections::HashSet,
    future::Future,
    pin::Pin,
    sync::OnceLock,
    task::{Context, Poll},
    time::Instant,
};

use prost::Message;

use opentelemetry::{
    KeyValue, global,
    metrics::{Histogram, Meter},
};

/// Every method path a custos server can serve: the custos protos' services, health
/// and reflection.
fn known_methods() -> &'static HashSet<String> {
    static KNOWN: OnceLock<HashSet<String>> = OnceLock::new();
    KNOWN.get_or_init(|| {
        let mut known: HashSet<String> = [
            "/grpc.health.v1.Health/Check",
            "/grpc.health.v1.Health/Watch",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        let set = prost_types::FileDescriptorSet::decode(custos_proto::FILE_DESCRIPTOR_SET)
            .expect("the compiled descriptor set decodes");
        for file in &set.file {
            for service in &file.service {
                for method in &service.method {
                    known.insert(format!(
                        "/{}.{}/{}",
                        file.package(),
                        service.name(),
                        method.name()
                    ));
                }
            }
        }
        known
    })
}

/// The label of a request path: the path itself if it is a known method.
pub fn method_label(path: &str) -> String {
    if known_methods().contains(path) {
        path.to_owned()
    } else {
        "unknown".to_owned()
    }
}

/// The gRPC code of an error a layer below returned instead of a response.
pub trait ErrorCode {
    fn grpc_code(&self) -> tonic::Code;
}

impl ErrorCode for std::convert::Infallible {
    fn grpc_code(&self) -> tonic::Code {
        match *self {}
    }
}

impl ErrorCode for tower::BoxError {
    fn grpc_code(&self) -> tonic::Code {
        self.downcast_ref::<tonic::Status>()
            .map_or(tonic::Code::Unknown, tonic::Status::code)
    }
}

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
    S::Error: ErrorCode,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = method_label(request.uri().path());
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
                // A layer below failed the call (with a status, if it gave one).
                Err(error) => (error.grpc_code() as i32).to_string(),
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

    /// A call refused below this layer counts with its own status, not as UNKNOWN; a
    /// failed unary call counts with the status tonic put in its headers; paths that are
    /// not methods of custos count under one label.
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
        shed.oneshot(request("/custos.intake.v1.IntakeService/SubmitReport"))
            .await
            .unwrap_err();
        let not_found = layer.layer(tower::service_fn(|_: http::Request<()>| async {
            let response = http::Response::builder()
                .header("grpc-status", "5")
                .body(())
                .unwrap();
            Ok::<_, tower::BoxError>(response)
        }));
        not_found
            .clone()
            .oneshot(request("/custos.intake.v1.IntakeService/GetReport"))
            .await
            .unwrap();
        for made_up in ["/a.A/Get", "/x/y", "/custos.intake.v1.IntakeService/Nope"] {
            not_found.clone().oneshot(request(made_up)).await.unwrap();
        }

        provider.force_flush().unwrap();
        let mut calls = recorded(&exporter);
        calls.sort();
        calls.dedup();
        assert_eq!(
            calls,
            [
                (
                    "/custos.intake.v1.IntakeService/GetReport".to_owned(),
                    "5".to_owned()
                ),
                (
                    "/custos.intake.v1.IntakeService/SubmitReport".to_owned(),
                    "8".to_owned()
                ),
                ("unknown".to_owned(), "5".to_owned()),
            ],
            "paths that are not methods share one label"
        );
    }
}
