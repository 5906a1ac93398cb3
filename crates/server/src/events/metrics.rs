//! Counters and a latency histogram for Prometheus (`GET /metrics`) and the tenant's own
//! figures (`GET /v1/metrics`). Written by hand rather than with a Prometheus client crate:
//! the label sets (tenant, instance) come and go with the data, the text format is a few lines,
//! and the whole registry is one map behind one lock.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Upper bounds (seconds) of the send latency histogram: typing included, so seconds.
pub const LATENCY_BUCKETS: [f64; 10] = [0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 10.0, 15.0, 30.0, 60.0];

#[derive(Default, Clone)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// (metric name, tenant, instance, extra label value).
type Key = (&'static str, String, String, String);

#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<Key, u64>>,
    latency: Mutex<BTreeMap<(String, String), Histogram>>,
}

/// What a number did since the gateway started, for `/v1/metrics`.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Counts {
    pub sent: u64,
    pub delivered: u64,
    pub read: u64,
    pub failed: u64,
    pub received: u64,
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Key, u64>> {
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A message reached `status` (sent, delivered, read, failed).
    pub fn message_status(&self, tenant: &str, instance: &str, status: &str) {
        let key = ("bzapper_messages_total", tenant.into(), instance.into(), status.into());
        *self.lock().entry(key).or_default() += 1;
    }

    pub fn message_received(&self, tenant: &str, instance: &str) {
        let key =
            ("bzapper_messages_received_total", tenant.into(), instance.into(), String::new());
        *self.lock().entry(key).or_default() += 1;
    }

    /// A webhook attempt ended with `outcome` (delivered, retry, dead).
    pub fn webhook_attempt(&self, tenant: &str, outcome: &str) {
        let key =
            ("bzapper_webhook_deliveries_total", tenant.into(), String::new(), outcome.into());
        *self.lock().entry(key).or_default() += 1;
    }

    /// From handing a message to a number to the server's ack (typing included).
    pub fn send_latency(&self, tenant: &str, instance: &str, seconds: f64) {
        let mut l = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let h = l.entry((tenant.into(), instance.into())).or_default();
        for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
            if seconds <= *le {
                h.buckets[i] += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// The tenant's counts by instance.
    pub fn counts(&self, tenant: &str) -> BTreeMap<String, Counts> {
        let mut out: BTreeMap<String, Counts> = BTreeMap::new();
        for ((name, t, inst, label), n) in self.lock().iter() {
            if t != tenant || inst.is_empty() {
                continue;
            }
            let c = out.entry(inst.clone()).or_default();
            match (*name, label.as_str()) {
                ("bzapper_messages_received_total", _) => c.received += n,
                (_, "sent") => c.sent += n,
                (_, "delivered") => c.delivered += n,
                (_, "read") => c.read += n,
                (_, "failed") => c.failed += n,
                _ => {}
            }
        }
        out
    }

    /// Every number's `sent` count since the gateway started, as (tenant, instance, count):
    /// what the series sampler turns into sends per interval.
    pub fn sent_counts(&self) -> Vec<(String, String, u64)> {
        self.lock()
            .iter()
            .filter(|((name, _, inst, label), _)| {
                *name == "bzapper_messages_total" && label == "sent" && !inst.is_empty()
            })
            .map(|((_, t, inst, _), n)| (t.clone(), inst.clone(), *n))
            .collect()
    }

    /// The counters and the histogram in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let help = [
            (
                "bzapper_messages_total",
                "Outbound messages that reached a status, by number.",
                "status",
            ),
            ("bzapper_messages_received_total", "Inbound messages, by number.", ""),
            (
                "bzapper_webhook_deliveries_total",
                "Webhook delivery attempts, by outcome.",
                "outcome",
            ),
        ];
        let counters = self.lock();
        for (metric, text, label) in help {
            let _ = writeln!(out, "# HELP {metric} {text}\n# TYPE {metric} counter");
            for ((name, t, inst, value), n) in counters.iter() {
                if *name != metric {
                    continue;
                }
                let mut labels = vec![format!("tenant=\"{}\"", escape(t))];
                if !inst.is_empty() {
                    labels.push(format!("instance=\"{}\"", escape(inst)));
                }
                if !label.is_empty() {
                    labels.push(format!("{label}=\"{}\"", escape(value)));
                }
                let _ = writeln!(out, "{metric}{{{}}} {n}", labels.join(","));
            }
        }
        drop(counters);
        let m = "bzapper_send_latency_seconds";
        let _ = writeln!(out, "# HELP {m} From hand-off to a number to the server's ack, typing included.\n# TYPE {m} histogram");
        for ((t, inst), h) in self.latency.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let l = format!("tenant=\"{}\",instance=\"{}\"", escape(t), escape(inst));
            for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
                let _ = writeln!(out, "{m}_bucket{{{l},le=\"{le}\"}} {}", h.buckets[i]);
            }
            let _ = writeln!(out, "{m}_bucket{{{l},le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "{m}_sum{{{l}}} {}", h.sum);
            let _ = writeln!(out, "{m}_count{{{l}}} {}", h.count);
        }
    }
}

/// Escapes a label value (backslash, double quote, newline).
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
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
        m.message_received("t1", "i1");
        m.webhook_attempt("t1", "delivered");
        m.send_latency("t1", "i1", 1.5);
        let mut out = String::new();
        m.render(&mut out);
        assert!(
            out.contains("bzapper_messages_total{tenant=\"t1\",instance=\"i1\",status=\"sent\"} 2"),
            "{out}"
        );
        assert!(out.contains("bzapper_messages_received_total{tenant=\"t1\",instance=\"i1\"} 1"));
        assert!(
            out.contains("bzapper_webhook_deliveries_total{tenant=\"t1\",outcome=\"delivered\"} 1")
        );
        assert!(out.contains(
            "bzapper_send_latency_seconds_bucket{tenant=\"t1\",instance=\"i1\",le=\"1\"} 0"
        ));
        assert!(out.contains(
            "bzapper_send_latency_seconds_bucket{tenant=\"t1\",instance=\"i1\",le=\"2\"} 1"
        ));
        assert!(out.contains("bzapper_send_latency_seconds_count{tenant=\"t1\",instance=\"i1\"} 1"));
        let c = m.counts("t1");
        assert_eq!(c["i1"], Counts { sent: 2, failed: 1, received: 1, ..Counts::default() });
        assert!(m.counts("t2").is_empty());
        assert_eq!(escape("a\"b\\c"), "a\\\"b\\\\c");
    }
}
