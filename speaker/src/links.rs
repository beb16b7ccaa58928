//! This node's network links as the link watch reports them, by name (what advertisements and
//! the interface filter speak of). Removals may carry only the kernel index, and a rename keeps
//! the index, so the index of each name is kept too. Pure: link events in, the table out.

use std::collections::{BTreeMap, HashMap};

use ferrolb_proto::l2::link::{LinkEvent, LinkInfo};

/// The links, kept current one event at a time.
#[derive(Debug, Clone, Default)]
pub struct Links {
    by_name: BTreeMap<String, LinkInfo>,
    /// Name of each index: removals only carry the index, and a rename must drop the old name.
    names: HashMap<u32, String>,
}

impl Links {
    /// Takes one link event.
    pub fn on_event(&mut self, event: LinkEvent) {
        match event {
            LinkEvent::Changed(link) => {
                if let Some(old) = self.names.insert(link.index, link.name.clone())
                    && old != link.name
                {
                    self.by_name.remove(&old);
                }
                self.by_name.insert(link.name.clone(), link);
            }
            LinkEvent::Removed { index, name } => {
                if let Some(name) = self.names.remove(&index).or(name) {
                    self.by_name.remove(&name);
                }
            }
            LinkEvent::Synced => {}
        }
    }

    /// Every link, by name.
    pub fn by_name(&self) -> &BTreeMap<String, LinkInfo> {
        &self.by_name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(index: u32, name: &str, carrier: bool) -> LinkInfo {
        LinkInfo {
            index,
            name: name.to_owned(),
            mac: None,
            is_up: true,
            has_carrier: carrier,
        }
    }

    fn names(links: &Links) -> Vec<&str> {
        links.by_name().keys().map(String::as_str).collect()
    }

    #[test]
    fn a_change_replaces_the_link_and_a_rename_drops_the_old_name() {
        let mut links = Links::default();
        links.on_event(LinkEvent::Changed(link(2, "eth0", true)));
        links.on_event(LinkEvent::Changed(link(3, "eth1", true)));
        links.on_event(LinkEvent::Changed(link(2, "eth0", false)));
        assert!(!links.by_name()["eth0"].has_carrier);
        links.on_event(LinkEvent::Changed(link(2, "uplink", false)));
        assert_eq!(names(&links), ["eth1", "uplink"]);
    }

    #[test]
    fn a_removal_by_index_alone_finds_the_name() {
        let mut links = Links::default();
        links.on_event(LinkEvent::Changed(link(2, "eth0", true)));
        links.on_event(LinkEvent::Changed(link(3, "eth1", true)));
        links.on_event(LinkEvent::Removed {
            index: 2,
            name: None,
        });
        assert_eq!(names(&links), ["eth1"]);
        links.on_event(LinkEvent::Removed {
            index: 99,
            name: Some("eth1".into()),
        });
        assert!(
            links.by_name().is_empty(),
            "an unknown index falls back to the name"
        );
        links.on_event(LinkEvent::Synced);
        assert!(links.by_name().is_empty());
    }
}
