//! Who answers ARP and NDP, asked the way a client on the segment asks: `arping` and `ndisc6`
//! run inside a client namespace, their output reduced to the MAC that answered; and
//! [`arp_answers`], which asks for many IPv4 addresses at once and keeps *every* MAC that
//! answered each, to catch two nodes answering one address.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::command::run_in;
use crate::netns;
use crate::sys::PacketSocket;

/// EtherType of ARP.
const ETH_P_ARP: u16 = 0x0806;

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

/// The host asking ARP in [`arp_answers`]: its namespace, interface, and that interface's MAC
/// and IPv4 address.
#[derive(Debug, Clone)]
pub struct ArpAsker {
    /// Full namespace name.
    pub ns: String,
    /// The interface on the segment.
    pub iface: String,
    /// Its MAC (`aa:bb:cc:dd:ee:ff`).
    pub mac: String,
    /// Its IPv4 address.
    pub ip: Ipv4Addr,
}

/// Every MAC that answered ARP for each address: address → MACs (lower case).
pub type ArpAnswers = BTreeMap<Ipv4Addr, BTreeSet<String>>;

/// Sends one ARP request for each of `ips` from `asker` and collects, for `wait`, every MAC
/// that answered each. Only answers count: replies sent to the asker's MAC about its own IP.
/// A gratuitous announcement (broadcast, for everyone) answers nothing, though `arping` prints
/// one that arrives while it waits as if it were a reply.
pub fn arp_answers(
    asker: &ArpAsker,
    ips: &[Ipv4Addr],
    wait: Duration,
) -> std::io::Result<ArpAnswers> {
    let mac = parse_mac(&asker.mac).ok_or_else(|| {
        std::io::Error::other(format!("{:?} of {} is not a MAC", asker.mac, asker.ns))
    })?;
    let (iface, own_ip, ips) = (asker.iface.clone(), asker.ip, ips.to_vec());
    netns::spawn_in(&asker.ns, move || {
        ask_here(&iface, (mac, own_ip), &ips, wait)
    })
    .join()
    .map_err(|_| std::io::Error::other("ARP asker panicked"))??
}

/// [`arp_answers`] in the calling thread's namespace.
fn ask_here(
    iface: &str,
    (mac, own_ip): ([u8; 6], Ipv4Addr),
    ips: &[Ipv4Addr],
    wait: Duration,
) -> std::io::Result<ArpAnswers> {
    let socket = PacketSocket::open(iface, ETH_P_ARP)?;
    for ip in ips {
        socket.send(&arp_request(mac, own_ip, *ip))?;
    }
    let mut answers: ArpAnswers = ips.iter().map(|ip| (*ip, BTreeSet::new())).collect();
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 1600];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Some(len) = socket.recv(&mut buf, left)? else {
            break;
        };
        let answer = buf.get(..len).and_then(|f| arp_answer_to(f, mac, own_ip));
        if let Some((ip, from)) = answer
            && let Some(macs) = answers.get_mut(&ip)
        {
            macs.insert(from);
        }
    }
    Ok(answers)
}

/// A broadcast ARP request (RFC 826) from `mac`/`own_ip` for `target`. Pure.
///
/// ```text
/// dst(6) src(6) 0x0806 | htype 1, ptype 0x0800, hlen 6, plen 4, op 1 | sha spa tha(0) tpa
/// ```
pub fn arp_request(mac: [u8; 6], own_ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut frame = Vec::with_capacity(42);
    frame.extend_from_slice(&[0xff; 6]);
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&ETH_P_ARP.to_be_bytes());
    frame.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&own_ip.octets());
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&target.octets());
    frame
}

/// When `frame` is an ARP reply to `mac`/`own_ip`: the address it answers for and the MAC it
/// gives (lower case). Pure.
pub fn arp_answer_to(frame: &[u8], mac: [u8; 6], own_ip: Ipv4Addr) -> Option<(Ipv4Addr, String)> {
    let field = |range: std::ops::Range<usize>| frame.get(range);
    let is_reply = field(12..14)? == ETH_P_ARP.to_be_bytes()
        && field(14..22)? == [0, 1, 0x08, 0x00, 6, 4, 0, 2];
    let is_ours = field(0..6)? == mac && field(32..38)? == mac && field(38..42)? == own_ip.octets();
    if !(is_reply && is_ours) {
        return None;
    }
    let ip: [u8; 4] = field(28..32)?.try_into().ok()?;
    let sender = field(22..28)?;
    let text: Vec<String> = sender.iter().map(|b| format!("{b:02x}")).collect();
    Some((Ipv4Addr::from(ip), text.join(":")))
}

/// `aa:bb:cc:dd:ee:ff` (either case) as bytes. Pure.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ASKER: [u8; 6] = [0x02, 0, 0, 0, 0, 0x64];
    const ASKER_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);

    /// The reply a responder at `mac` sends for `ip` to `to`/`to_ip`.
    fn reply(mac: [u8; 6], ip: Ipv4Addr, to: [u8; 6], to_ip: Ipv4Addr) -> Vec<u8> {
        let mut frame = to.to_vec();
        frame.extend_from_slice(&mac);
        frame.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 2]);
        frame.extend_from_slice(&mac);
        frame.extend_from_slice(&ip.octets());
        frame.extend_from_slice(&to);
        frame.extend_from_slice(&to_ip.octets());
        frame
    }

    #[test]
    fn a_request_is_a_broadcast_who_has_from_the_asker() {
        let frame = arp_request(ASKER, ASKER_IP, Ipv4Addr::new(192, 0, 2, 200));
        assert_eq!(frame.len(), 42);
        assert_eq!(&frame[..6], &[0xff; 6]);
        assert_eq!(&frame[12..22], &[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
        assert_eq!(&frame[22..28], &ASKER);
        assert_eq!(&frame[28..32], &[192, 0, 2, 100]);
        assert_eq!(&frame[38..42], &[192, 0, 2, 200]);
    }

    #[test]
    fn only_replies_to_the_asker_count_as_answers() {
        let node = [0x02, 0, 0, 0, 0, 0x11];
        let ip = Ipv4Addr::new(192, 0, 2, 200);
        let answer = reply(node, ip, ASKER, ASKER_IP);
        assert_eq!(
            arp_answer_to(&answer, ASKER, ASKER_IP),
            Some((ip, "02:00:00:00:00:11".to_owned()))
        );
        let gratuitous = reply(node, ip, [0xff; 6], ip);
        assert_eq!(arp_answer_to(&gratuitous, ASKER, ASKER_IP), None);
        let to_another = reply(
            node,
            ip,
            [0x02, 0, 0, 0, 0, 0x63],
            Ipv4Addr::new(192, 0, 2, 99),
        );
        assert_eq!(arp_answer_to(&to_another, ASKER, ASKER_IP), None);
        let request = arp_request(node, ip, ASKER_IP);
        assert_eq!(arp_answer_to(&request, ASKER, ASKER_IP), None);
        assert_eq!(arp_answer_to(&answer[..30], ASKER, ASKER_IP), None);
    }

    #[test]
    fn macs_parse_in_either_case_and_nothing_else_does() {
        assert_eq!(
            parse_mac("02:AB:00:00:00:0f"),
            Some([2, 0xab, 0, 0, 0, 0x0f])
        );
        assert_eq!(parse_mac("02:ab:00:00:00"), None);
        assert_eq!(parse_mac("02:ab:00:00:00:00:01"), None);
        assert_eq!(parse_mac("02:ab:00:00:00:zz"), None);
    }

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
