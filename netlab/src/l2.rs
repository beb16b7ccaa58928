//! Who answers ARP and NDP, asked the way a client on the segment asks: `arping` and `ndisc6`
//! run inside a client namespace, their output reduced to the MAC that answered.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::command::run_in;

/// The MAC that answers ARP for `ip` from namespace `ns` through `iface` (`arping -c 1 -w 1`),
/// if any; lower case.
pub fn arp_owner(ns: &str, iface: &str, ip: Ipv4Addr) -> Option<String> {
    let ip = ip.to_string();
    let out = run_in(ns, &["arping", "-c", "1", "-w", "1", "-I", iface, &ip]).ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    text.lines()
        .filter(|l| l.contains("from"))
        .find_map(find_mac)
}

/// The MAC that answers a neighbour solicitation for `ip` from namespace `ns` through `iface`
/// (`ndisc6 -1 -r 1 -w 500`), if any; lower case.
pub fn ndp_owner(ns: &str, iface: &str, ip: Ipv6Addr) -> Option<String> {
    let ip = ip.to_string();
    let out = run_in(ns, &["ndisc6", "-1", "-r", "1", "-w", "500", &ip, iface]).ok()?;
    find_mac(&String::from_utf8_lossy(&out.stdout).to_lowercase())
}

/// The first MAC address (`aa:bb:cc:dd:ee:ff`) in `text`, as written there. Pure.
pub fn find_mac(text: &str) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || c == '[' || c == ']')
        .find(|w| {
            w.len() == 17
                && w.split(':').count() == 6
                && w.split(':')
                    .all(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit()))
        })
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mac_is_found_in_arping_ndisc6_and_ip_output() {
        let arping = "Unicast reply from 192.0.2.10 [02:AB:00:00:00:01]  0.630ms";
        assert_eq!(find_mac(arping).as_deref(), Some("02:AB:00:00:00:01"));
        let ndisc6 = "Target link-layer address: 02:ab:00:00:00:02\n from fe80::1";
        assert_eq!(find_mac(ndisc6).as_deref(), Some("02:ab:00:00:00:02"));
        let ip = "eth0@if5  UP  0a:1b:2c:3d:4e:5f <BROADCAST,MULTICAST,UP,LOWER_UP>";
        assert_eq!(find_mac(ip).as_deref(), Some("0a:1b:2c:3d:4e:5f"));
        assert_eq!(find_mac("fe80::1:2:3:4:5 12:34:56"), None);
    }
}
