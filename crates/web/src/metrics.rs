//! Prometheus metrics through `prometheus-client`: one registry per
//! process, HTTP counters and latency histograms per route for every
//! request (recorded by [`crate::observe`]), and the helpers the server and
//! the fleet use to expose values they read at scrape time.
//!
//! The exposition is OpenMetrics text (what Prometheus scrapes by default);
//! counters end in `_total`, the body in `# EOF`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Label sets: pairs of name and value, in the order they are printed.
pub type Labels = Vec<(&'static str, String)>;

/// Latency buckets in seconds: 1 ms to ~33 s, doubling.
pub fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.001, 2.0, 16)
}

/// A histogram of seconds with [`latency_buckets`].
pub fn latency_histogram() -> Histogram {
    Histogram::new(latency_buckets())
}

/// A family of latency histograms, one per label set.
pub type LatencyFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// A new [`LatencyFamily`].
pub fn latency_family() -> LatencyFamily {
    Family::new_with_constructor(latency_histogram)
}

/// The process's metrics: what [`crate::observe`] records for every HTTP
/// request, plus whatever the service registers in [`Metrics::registry`].
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    latency: LatencyFamily,
}

impl Metrics {
    /// HTTP metrics named `{prefix}_requests_total{endpoint,status}` and
    /// `{prefix}_request_duration_seconds{endpoint}`; `endpoint` is the
    /// route's template (`/admin/v1/rollouts/{id}`), `other` for a path no
    /// route matched (so a scan of random paths cannot grow the label set).
    pub fn new(prefix: &str) -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<Labels, Counter>::default();
        let latency = latency_family();
        registry.register(
            format!("{prefix}_requests"),
            "HTTP requests by endpoint and status",
            requests.clone(),
        );
        registry.register(
            format!("{prefix}_request_duration_seconds"),
            "HTTP request latency by endpoint: arrival to response headers",
            latency.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
        }
    }

    /// Where the service registers its own metrics and collectors (at set-up,
    /// before the metrics are shared).
    pub fn registry(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Adds a collector: values read on every scrape.
    pub fn collect(&mut self, c: impl Collector) {
        self.registry.register_collector(Box::new(c));
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    fn record(&self, endpoint: String, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&vec![
                ("endpoint", endpoint.clone()),
                ("status", status.to_string()),
            ])
            .inc();
        self.latency
            .get_or_create(&vec![("endpoint", endpoint)])
            .observe(seconds);
    }
}

/// The middleware that counts and times every request.
pub(crate) async fn record(State(m): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let endpoint = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let res = next.run(req).await;
    m.record(
        endpoint,
        res.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    res
}

/// `GET /metrics`.
#[utoipa::path(get, path = "/metrics", tag = "ops", summary = "Prometheus metrics (OpenMetrics text)",
    responses((status = 200, description = "Counters, gauges and histograms", body = String,
        content_type = "application/openmetrics-text")))]
pub async fn serve(State(m): State<Arc<Metrics>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.render(),
    )
        .into_response()
}

/// Help text ending in one period, as `Registry::register` writes its own
/// (it appends one): pass help texts without it everywhere.
fn sentence(help: &str) -> String {
    format!("{}.", help.trim_end_matches('.'))
}

/// Writes values read at scrape time: `counter`, `gauge` and their
/// labelled forms, each family under one descriptor.
pub struct Scrape<'a> {
    encoder: DescriptorEncoder<'a>,
}

impl<'a> Scrape<'a> {
    pub fn new(encoder: DescriptorEncoder<'a>) -> Self {
        Scrape { encoder }
    }

    /// A counter (`name` without `_total`; the encoder adds it).
    pub fn counter(&mut self, name: &str, help: &str, v: u64) -> std::fmt::Result {
        let c = ConstCounter::new(v);
        c.encode(
            self.encoder
                .encode_descriptor(name, &sentence(help), None, c.metric_type())?,
        )
    }

    /// A gauge (integers print as integers, floats with a fraction).
    pub fn gauge<N: EncodeGaugeValue>(&mut self, name: &str, help: &str, v: N) -> std::fmt::Result {
        let g = ConstGauge::new(v);
        g.encode(
            self.encoder
                .encode_descriptor(name, &sentence(help), None, g.metric_type())?,
        )
    }

    /// One counter family: a value per label set.
    pub fn counters(&mut self, name: &str, help: &str, rows: &[(Labels, u64)]) -> std::fmt::Result {
        let kind = ConstCounter::new(0u64).metric_type();
        let mut family = self
            .encoder
            .encode_descriptor(name, &sentence(help), None, kind)?;
        for (labels, v) in rows {
            ConstCounter::new(*v).encode(family.encode_family(labels)?)?;
        }
        Ok(())
    }

    /// One gauge family: a value per label set.
    pub fn gauges<N: EncodeGaugeValue + Copy>(
        &mut self,
        name: &str,
        help: &str,
        rows: &[(Labels, N)],
    ) -> std::fmt::Result {
        let kind = ConstGauge::new(0i64).metric_type();
        let mut family = self
            .encoder
            .encode_descriptor(name, &sentence(help), None, kind)?;
        for (labels, v) in rows {
            ConstGauge::new(*v).encode(family.encode_family(labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Two;

    impl Collector for Two {
        fn encode(&self, encoder: DescriptorEncoder) -> std::fmt::Result {
            let mut s = Scrape::new(encoder);
            s.counter("t_loads", "Loads", 3)?;
            s.gauge("t_share", "Share", 0.5)?;
            s.gauges("t_bytes", "Bytes", &[(vec![("model", "a".into())], 7u64)])
        }
    }

    #[test]
    fn requests_scrape_values_and_histograms_render_as_openmetrics() {
        let mut m = Metrics::new("t");
        m.collect(Two);
        m.record("/v1/x".into(), 200, 0.003);
        m.record("/v1/x".into(), 200, 0.5);
        m.record("other".into(), 404, 0.0001);
        let text = m.render();
        for line in [
            "t_requests_total{endpoint=\"/v1/x\",status=\"200\"} 2",
            "t_requests_total{endpoint=\"other\",status=\"404\"} 1",
            "t_request_duration_seconds_count{endpoint=\"/v1/x\"} 2",
            "t_request_duration_seconds_bucket{le=\"0.004\",endpoint=\"/v1/x\"} 1",
            "t_loads_total 3",
            "t_bytes{model=\"a\"} 7\n",
            "t_share 0.5",
            "# HELP t_loads Loads.\n",
            "# EOF",
        ] {
            assert!(text.contains(line), "{line:?} missing from:\n{text}");
        }
        assert!(!text.contains(".."), "help texts end in one period: {text}");
    }
}
