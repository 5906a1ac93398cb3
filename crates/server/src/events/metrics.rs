//! The gateway's counters and send-latency histogram: families of the Prometheus project's
//! client (`prometheus-client`) for `GET /metrics`, and the tenant's own figures for
//! `GET /v1/metrics`, read from the same counters.

use std::collections::{BTreeMap, HashMap};
use std::sync::{OnceLock, RwLock};

use prometheus_client::encoding::{prometheus_text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds (seconds) of the send latency histogram: typing included, so seconds.
pub const LATENCY_BUCKETS: [f64; 10] = [0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 10.0, 15.0, 30.0, 60.0];

/// The outbound statuses counted, in the order of [`NumberCounters::statuses`].
const STATUSES: [&str; 4] = ["sent", "delivered", "read", "failed"];

/// A number's series: `tenant`, `instance` (in that order on every line).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NumberLabels {
    tenant: String,
    instance: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    tenant: String,
    instance: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    tenant: String,
    outcome: &'static str,
}

type LatencyFamily = Family<NumberLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// One number's handles into the families, each made on its first count so that a series
/// appears once it has something to say (as a status that never happened stays absent).
/// A handle shares its value with the family: counting through it is an atomic add.
#[derive(Default)]
struct NumberCounters {
    statuses: [OnceLock<Counter>; STATUSES.len()],
    received: OnceLock<Counter>,
    latency: OnceLock<Histogram>,
}

fn read(c: &OnceLock<Counter>) -> u64 {
    c.get().map_or(0, Counter::get)
}

pub struct Metrics {
    registry: Registry,
    messages: Family<StatusLabels, Counter>,
    received: Family<NumberLabels, Counter>,
    latency: LatencyFamily,
    webhooks: Family<OutcomeLabels, Counter>,
    /// tenant → instance → handles: finds a number's counters without building its labels
    /// (a read lock and two lookups per event), and lists a tenant's for `/v1/metrics`.
    numbers: RwLock<HashMap<String, HashMap<String, NumberCounters>>>,
}

/// What a number did since the gateway started, for `/v1/metrics`.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Counts {
    /// Messages that went out.
    pub sent: u64,
    /// Messages that reached the phone.
    pub delivered: u64,
    /// Messages the recipient read.
    pub read: u64,
    /// Messages whose send failed.
    pub failed: u64,
    /// Messages received from contacts.
    pub received: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        let messages = Family::default();
        let received = Family::default();
        let latency = LatencyFamily::new_with_constructor(latency_histogram);
        let webhooks = Family::default();
        // Counters are registered without `_total`, which the encoder appends; the help texts
        // without their full stop, which the registry appends.
        let mut registry = Registry::default();
        registry.register(
            "bzapper_messages",
            "Outbound messages that reached a status, by number",
            messages.clone(),
        );
        registry.register(
            "bzapper_messages_received",
            "Inbound messages, by number",
            received.clone(),
        );
        registry.register(
            "bzapper_webhook_deliveries",
            "Webhook delivery attempts, by outcome",
            webhooks.clone(),
        );
        registry.register(
            "bzapper_send_latency_seconds",
            "From hand-off to a number to the server's ack, typing included",
            latency.clone(),
        );
        Metrics { registry, messages, received, latency, webhooks, numbers: RwLock::default() }
    }
}

impl Metrics {
    /// Runs `f` on the number's handles, adding an entry on its first event.
    fn with_number<R>(&self, tenant: &str, instance: &str, f: impl Fn(&NumberCounters) -> R) -> R {
        let numbers = self.numbers.read().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = numbers.get(tenant).and_then(|t| t.get(instance)) {
            return f(c);
        }
        drop(numbers);
        let mut numbers = self.numbers.write().unwrap_or_else(|p| p.into_inner());
        let c =
            numbers.entry(tenant.to_owned()).or_default().entry(instance.to_owned()).or_default();
        f(c)
    }

    fn number_labels(tenant: &str, instance: &str) -> NumberLabels {
        NumberLabels { tenant: tenant.into(), instance: instance.into() }
    }

    /// A message reached `status` (sent, delivered, read, failed; others are not counted).
    pub fn message_status(&self, tenant: &str, instance: &str, status: &str) {
        let Some(i) = STATUSES.iter().position(|s| *s == status) else { return };
        self.with_number(tenant, instance, |c| {
            c.statuses[i]
                .get_or_init(|| {
                    let labels = StatusLabels {
                        tenant: tenant.into(),
                        instance: instance.into(),
                        status: STATUSES[i],
                    };
                    self.messages.get_or_create_owned(&labels)
                })
                .inc();
        });
    }

    pub fn message_received(&self, tenant: &str, instance: &str) {
        self.with_number(tenant, instance, |c| {
            c.received
                .get_or_init(|| {
                    self.received.get_or_create_owned(&Self::number_labels(tenant, instance))
                })
                .inc();
        });
    }

    /// A webhook attempt ended with `outcome` (delivered, retry, dead).
    pub fn webhook_attempt(&self, tenant: &str, outcome: &'static str) {
        self.webhooks.get_or_create(&OutcomeLabels { tenant: tenant.into(), outcome }).inc();
    }

    /// From handing a message to a number to the server's ack (typing included).
    pub fn send_latency(&self, tenant: &str, instance: &str, seconds: f64) {
        self.with_number(tenant, instance, |c| {
            c.latency
                .get_or_init(|| {
                    self.latency.get_or_create_owned(&Self::number_labels(tenant, instance))
                })
                .observe(seconds);
        });
    }

    /// The tenant's counts by instance.
    pub fn counts(&self, tenant: &str) -> BTreeMap<String, Counts> {
        let numbers = self.numbers.read().unwrap_or_else(|p| p.into_inner());
        let Some(t) = numbers.get(tenant) else { return BTreeMap::new() };
        t.iter()
            .map(|(instance, c)| {
                let [sent, delivered, read_, failed] = &c.statuses;
                let counts = Counts {
                    sent: read(sent),
                    delivered: read(delivered),
                    read: read(read_),
                    failed: read(failed),
                    received: read(&c.received),
                };
                (instance.clone(), counts)
            })
            .collect()
    }

    /// Every number's `sent` count since the gateway started, as (tenant, instance, count):
    /// what the series sampler turns into sends per interval.
    pub fn sent_counts(&self) -> Vec<(String, String, u64)> {
        let numbers = self.numbers.read().unwrap_or_else(|p| p.into_inner());
        numbers
            .iter()
            .flat_map(|(tenant, instances)| {
                // `statuses[0]` is `sent` (STATUSES); a send without a number counts nowhere.
                instances.iter().filter(|(instance, _)| !instance.is_empty()).map(
                    move |(instance, c)| (tenant.clone(), instance.clone(), read(&c.statuses[0])),
                )
            })
            .collect()
    }

    /// The counters and the histogram in the Prometheus text format (0.0.4), appended to
    /// `out`; a family with no series yet is left out.
    pub fn render(&self, out: &mut String) -> std::fmt::Result {
        prometheus_text::encode(out, &self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_render_in_the_text_format() {
        let m = Metrics::default();
        m.message_status("t1", "i1", "sent");
        m.message_status("t1", "i1", "sent");
        m.message_status("t1", "i1", "failed");
        m.message_status("t1", "i1", "queued");
        m.message_received("t1", "i1");
        m.webhook_attempt("t1", "delivered");
        m.send_latency("t1", "i1", 1.5);
        let mut out = String::new();
        m.render(&mut out).unwrap();
        for line in [
            "# HELP bzapper_messages_total Outbound messages that reached a status, by number.",
            "# TYPE bzapper_messages_total counter",
            "bzapper_messages_total{tenant=\"t1\",instance=\"i1\",status=\"sent\"} 2",
            "bzapper_messages_total{tenant=\"t1\",instance=\"i1\",status=\"failed\"} 1",
            "bzapper_messages_received_total{tenant=\"t1\",instance=\"i1\"} 1",
            "bzapper_webhook_deliveries_total{tenant=\"t1\",outcome=\"delivered\"} 1",
            "# TYPE bzapper_send_latency_seconds histogram",
            "bzapper_send_latency_seconds_bucket{tenant=\"t1\",instance=\"i1\",le=\"1\"} 0",
            "bzapper_send_latency_seconds_bucket{tenant=\"t1\",instance=\"i1\",le=\"2\"} 1",
            "bzapper_send_latency_seconds_bucket{tenant=\"t1\",instance=\"i1\",le=\"+Inf\"} 1",
            "bzapper_send_latency_seconds_count{tenant=\"t1\",instance=\"i1\"} 1",
        ] {
            assert!(out.lines().any(|l| l == line), "missing `{line}` in:\n{out}");
        }
        assert!(!out.contains("queued") && !out.contains("delivered\"} 0"), "{out}");
        assert!(!out.contains("# EOF"), "Prometheus text, not OpenMetrics: {out}");
        let c = m.counts("t1");
        assert_eq!(c["i1"], Counts { sent: 2, failed: 1, received: 1, ..Counts::default() });
        assert!(m.counts("t2").is_empty());
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::default();
        m.message_received("a\"b\\c", "i\n1");
        let mut out = String::new();
        m.render(&mut out).unwrap();
        assert!(out.contains(r#"{tenant="a\"b\\c",instance="i\n1"} 1"#), "{out}");
    }
}
