//! Captures the metrics a test's service records: installs an in-memory exporter as the
//! global meter provider (each test runs in its own process under nextest), so that the
//! kit's instruments, created from the global meter, record into it.

use std::collections::HashMap;

use opentelemetry_sdk::metrics::{
    InMemoryMetricExporter, PeriodicReader, SdkMeterProvider,
    data::{AggregatedMetrics, MetricData},
};

#[derive(Debug)]
pub struct Metrics {
    exporter: InMemoryMetricExporter,
    provider: SdkMeterProvider,
}

/// Installs the capture; call it before starting the service under test.
pub fn capture() -> Metrics {
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    opentelemetry::global::set_meter_provider(provider.clone());
    Metrics { exporter, provider }
}

/// One recorded point: its attributes and its value (the last value of a gauge, the sum
/// of a counter).
pub type Point = (HashMap<String, String>, f64);

impl Metrics {
    /// The points of metric `name` as they stand now.
    pub fn points(&self, name: &str) -> Vec<Point> {
        self.provider.force_flush().expect("metrics flush");
        let mut out = Vec::new();
        let finished = self.exporter.get_finished_metrics().expect("metrics");
        // Each flush exports the cumulative state: the last export is the current one.
        for resource in finished.iter().rev().take(1) {
            for scope in resource.scope_metrics() {
                for metric in scope.metrics().filter(|m| m.name() == name) {
                    let attributes = |kvs: &mut dyn Iterator<Item = &opentelemetry::KeyValue>| {
                        kvs.map(|kv| (kv.key.to_string(), kv.value.to_string()))
                            .collect::<HashMap<_, _>>()
                    };
                    match metric.data() {
                        AggregatedMetrics::F64(MetricData::Gauge(g)) => {
                            for p in g.data_points() {
                                out.push((attributes(&mut p.attributes()), p.value()));
                            }
                        }
                        AggregatedMetrics::U64(MetricData::Sum(s)) => {
                            for p in s.data_points() {
                                out.push((attributes(&mut p.attributes()), p.value() as f64));
                            }
                        }
                        AggregatedMetrics::F64(MetricData::Histogram(h)) => {
                            for p in h.data_points() {
                                out.push((attributes(&mut p.attributes()), p.count() as f64));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        out
    }
}
