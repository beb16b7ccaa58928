//! `metallb_speaker_announced{service,protocol,node,ip}`, rendered at scrape time from one set
//! of label values. A gauge child per Service costs about 700 bytes in the prometheus crate (a
//! descriptor and label pairs each): 7 MB at 10k Services, for a series that is always 1.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use crate::plan::Announcements;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Gauge, LabelPair, Metric, MetricFamily, MetricType};

/// Label names, in the order of each series' values.
const LABELS: [&str; 4] = ["service", "protocol", "node", "ip"];
const NAME: &str = "metallb_speaker_announced";
const HELP: &str = "Services being announced from this node";

/// One announced series: service, protocol, node, ip.
pub type Series = [String; 4];

/// The series for what `node` announces: per L2 IP and Service, and per BGP Service (with an
/// empty `ip`, as MetalLB exports it).
pub fn series(node: &str, announcements: &Announcements) -> BTreeSet<Series> {
    let l2 = announcements.l2.iter().flat_map(|(ip, a)| {
        a.services.iter().map(move |service| {
            [
                service.clone(),
                "layer2".into(),
                node.into(),
                ip.to_string(),
            ]
        })
    });
    let bgp = announcements
        .bgp_peers_by_service
        .keys()
        .map(|service| [service.clone(), "bgp".into(), node.into(), String::new()]);
    l2.chain(bgp).collect()
}

/// The announced series; clones share them.
#[derive(Debug, Clone)]
pub struct Announced {
    series: Arc<RwLock<BTreeSet<Series>>>,
    desc: Arc<Desc>,
}

impl Announced {
    /// An empty set, described as MetalLB describes the metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let desc = Desc::new(
            NAME.into(),
            HELP.into(),
            LABELS.iter().map(|l| (*l).to_owned()).collect(),
            Default::default(),
        )?;
        Ok(Self {
            series: Arc::default(),
            desc: Arc::new(desc),
        })
    }

    /// Replaces the set.
    pub fn set(&self, series: BTreeSet<Series>) {
        *self.series.write().unwrap_or_else(|e| e.into_inner()) = series;
    }

    /// Whether `series` is exported now.
    pub fn contains(&self, series: &Series) -> bool {
        self.series
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(series)
    }
}

impl Collector for Announced {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let series = self.series.read().unwrap_or_else(|e| e.into_inner());
        let metrics = series
            .iter()
            .map(|values| {
                // The text encoder expects label pairs sorted by name.
                let mut pairs: Vec<LabelPair> = LABELS
                    .iter()
                    .zip(values)
                    .map(|(name, value)| {
                        let mut pair = LabelPair::default();
                        pair.set_name((*name).to_owned());
                        pair.set_value(value.clone());
                        pair
                    })
                    .collect();
                pairs.sort_by(|a, b| a.name().cmp(b.name()));
                let mut gauge = Gauge::default();
                gauge.set_value(1.0);
                let mut metric = Metric::default();
                metric.set_label(pairs);
                metric.set_gauge(gauge);
                metric
            })
            .collect();
        let mut family = MetricFamily::default();
        family.set_name(NAME.into());
        family.set_help(HELP.into());
        family.set_field_type(MetricType::GAUGE);
        family.set_metric(metrics);
        vec![family]
    }
}

#[cfg(test)]
mod tests {
    use prometheus::Registry;

    use super::*;
    use crate::plan::{Interfaces, L2Announcement};

    #[test]
    fn every_l2_ip_and_service_and_every_bgp_service_is_a_series() {
        let mut announcements = Announcements::default();
        announcements.l2.insert(
            "192.0.2.1".parse().expect("ip"),
            L2Announcement {
                services: BTreeSet::from(["ns/a".to_owned(), "ns/b".to_owned()]),
                interfaces: Interfaces::All,
            },
        );
        announcements
            .bgp_peers_by_service
            .insert("ns/c".into(), vec!["tor".into()]);
        let row = |s: &str, p: &str, ip: &str| {
            [
                s.to_owned(),
                p.to_owned(),
                "node-1".to_owned(),
                ip.to_owned(),
            ]
        };
        assert_eq!(
            series("node-1", &announcements),
            BTreeSet::from([
                row("ns/a", "layer2", "192.0.2.1"),
                row("ns/b", "layer2", "192.0.2.1"),
                row("ns/c", "bgp", ""),
            ])
        );
    }

    #[test]
    fn each_series_renders_once_with_sorted_labels_and_disappears_when_removed() {
        let announced = Announced::new().expect("valid desc");
        let registry = Registry::new();
        registry
            .register(Box::new(announced.clone()))
            .expect("registers");
        let series = |ip: &str| {
            [
                "shop/web".to_owned(),
                "layer2".to_owned(),
                "node-1".to_owned(),
                ip.to_owned(),
            ]
        };
        announced.set(BTreeSet::from([series("192.0.2.1"), series("2001:db8::1")]));
        let render = || {
            prometheus::TextEncoder::new()
                .encode_to_string(&registry.gather())
                .expect("renders")
        };
        let text = render();
        assert!(
            text.contains(r#"metallb_speaker_announced{ip="192.0.2.1",node="node-1",protocol="layer2",service="shop/web"} 1"#),
            "{text}"
        );
        assert_eq!(text.matches("metallb_speaker_announced{").count(), 2);
        announced.set(BTreeSet::from([series("2001:db8::1")]));
        assert!(!render().contains("192.0.2.1"));
        assert!(announced.contains(&series("2001:db8::1")));
    }
}
