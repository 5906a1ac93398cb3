//! The figures `GET /metrics` reads at scrape time (each number's status and health score,
//! each pool's queue depth), written in the Prometheus text format by a `prometheus-client`
//! collector over rows the caller read, so a scrape keeps no gauge between scrapes.

use std::collections::BTreeMap;

use bzapper_core::Status;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// One number as a scrape sees it.
#[derive(Debug)]
pub struct NumberGauge {
    pub tenant: String,
    pub instance: String,
    pub status: Status,
    pub health_score: u8,
}

/// What one scrape read: the numbers, and the queued messages by (tenant, pool).
#[derive(Debug, Default)]
pub struct ScrapeGauges {
    pub numbers: Vec<NumberGauge>,
    pub queues: BTreeMap<(String, String), u64>,
}

impl ScrapeGauges {
    /// Appends the gauges to `out` in the Prometheus text format (0.0.4).
    pub fn render(self, out: &mut String) -> std::fmt::Result {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        prometheus_text::encode(out, &registry)
    }
}

impl Collector for ScrapeGauges {
    // The help texts are written as given here (a registered metric's get a full stop added).
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        if !self.numbers.is_empty() {
            let help = "1 for the number's current status.";
            let mut family = encoder.encode_descriptor(
                "bzapper_instance_status",
                help,
                None,
                MetricType::Gauge,
            )?;
            for n in &self.numbers {
                for s in Status::ALL {
                    let labels = [
                        ("tenant", n.tenant.as_str()),
                        ("instance", n.instance.as_str()),
                        ("status", s.as_str()),
                    ];
                    ConstGauge::new(i64::from(n.status == s))
                        .encode(family.encode_family(&labels)?)?;
                }
            }
            let help = "The number's health score (0-100).";
            let name = "bzapper_instance_health_score";
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for n in &self.numbers {
                let labels = [("tenant", n.tenant.as_str()), ("instance", n.instance.as_str())];
                ConstGauge::new(i64::from(n.health_score))
                    .encode(family.encode_family(&labels)?)?;
            }
        }
        if !self.queues.is_empty() {
            let help = "Messages waiting to be sent, by pool.";
            let mut family =
                encoder.encode_descriptor("bzapper_queue_depth", help, None, MetricType::Gauge)?;
            for ((tenant, pool), n) in &self.queues {
                let labels = [("tenant", tenant.as_str()), ("pool", pool.as_str())];
                // Queue depths fit an i64 (the store counts rows).
                let n = i64::try_from(*n).unwrap_or(i64::MAX);
                ConstGauge::new(n).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_is_a_series_and_empty_families_are_left_out() {
        let gauges = ScrapeGauges {
            numbers: vec![NumberGauge {
                tenant: "t1".into(),
                instance: "i1".into(),
                status: Status::Connected,
                health_score: 87,
            }],
            queues: BTreeMap::new(),
        };
        let mut out = String::new();
        gauges.render(&mut out).unwrap();
        assert_eq!(
            out,
            "# HELP bzapper_instance_status 1 for the number's current status.\n\
             # TYPE bzapper_instance_status gauge\n\
             bzapper_instance_status{tenant=\"t1\",instance=\"i1\",status=\"qr_pending\"} 0\n\
             bzapper_instance_status{tenant=\"t1\",instance=\"i1\",status=\"connecting\"} 0\n\
             bzapper_instance_status{tenant=\"t1\",instance=\"i1\",status=\"connected\"} 1\n\
             bzapper_instance_status{tenant=\"t1\",instance=\"i1\",status=\"disconnected\"} 0\n\
             # HELP bzapper_instance_health_score The number's health score (0-100).\n\
             # TYPE bzapper_instance_health_score gauge\n\
             bzapper_instance_health_score{tenant=\"t1\",instance=\"i1\"} 87\n"
        );
        let queues = [(("t1".to_string(), "default".to_string()), 3)].into_iter().collect();
        let mut out = String::new();
        ScrapeGauges { numbers: vec![], queues }.render(&mut out).unwrap();
        assert!(out.ends_with("bzapper_queue_depth{tenant=\"t1\",pool=\"default\"} 3\n"), "{out}");
    }
}
