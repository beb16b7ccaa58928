//! The cluster lab's network: node namespaces (addresses, AnyIP routes for the pools, an HTTP
//! server answering with the node's name), the FRR router with a client behind it, second NICs,
//! and links cut and restored as a crashed machine's would be.

use std::net::{Ipv4Addr, Ipv6Addr};

use ferrolb_kubesim::KubeSim;
use ferrolb_netlab::routers::Frr;
use ferrolb_netlab::{LabError, Netlab, io_error};

use super::objects::create_node;
use super::{ClusterLab, HTTP_PORT, LabNode, NODE_AS, ROUTER_AS, ROUTER_V4};

/// Adds node `i`: its namespace on the switch, routes, web server and Node object.
pub(super) fn add_node(
    net: &mut Netlab,
    sim: &KubeSim,
    i: u8,
    with_router: bool,
) -> Result<LabNode, LabError> {
    let role = format!("node-{i}");
    let v4 = Ipv4Addr::new(192, 0, 2, 10 + i);
    let v6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10 + u16::from(i));
    net.add_host(&role, "eth0", &[&format!("{v4}/24"), &format!("{v6}/64")])?;
    for sysctl in [
        "net.ipv4.conf.all.arp_ignore=1",
        "net.ipv4.conf.all.arp_announce=2",
    ] {
        net.sysctl(&role, sysctl)?;
    }
    add_node_routes(net, &role, with_router)?;
    start_web_server(net, &role, i)?;
    let name = format!("node-{i}");
    create_node(sim, &name, v4, v6)?;
    let mac = net.mac(&role, "eth0")?;
    Ok(LabNode {
        name,
        role,
        v4,
        v6,
        mac,
        mac2: None,
        speaker: None,
    })
}

/// AnyIP `local` routes for the pools (the node accepts their traffic as kube-proxy's DNAT
/// would) and, with a router, the routes to the client behind it.
fn add_node_routes(net: &Netlab, role: &str, with_router: bool) -> Result<(), LabError> {
    for (family, pool) in [
        ("-4", "192.0.2.192/27"),
        ("-4", "203.0.113.0/28"),
        ("-6", "2001:db8::200/119"),
        ("-6", "2001:db8:100::/124"),
    ] {
        net.exec_ok(
            role,
            &[
                "ip", family, "route", "add", "local", pool, "dev", "lo", "table", "local",
            ],
        )?;
    }
    if with_router {
        add_router_routes(net, role)?;
    }
    Ok(())
}

/// The node's routes to the outside client through the router (`replace`, so that they can be
/// put back after the link went down, which removes them).
fn add_router_routes(net: &Netlab, role: &str) -> Result<(), LabError> {
    let router = ROUTER_V4.to_string();
    net.exec_ok(
        role,
        &["ip", "route", "replace", "198.51.100.0/24", "via", &router],
    )?;
    net.exec_ok(
        role,
        &[
            "ip",
            "-6",
            "route",
            "replace",
            "2001:db8:ff::/64",
            "via",
            "2001:db8::254",
        ],
    )?;
    Ok(())
}

/// An HTTP server on [`HTTP_PORT`] answering with the node's name (`node-I`).
fn start_web_server(net: &mut Netlab, role: &str, i: u8) -> Result<(), LabError> {
    let www = net.path(&format!("www-{role}"));
    std::fs::create_dir_all(&www).map_err(io_error("www"))?;
    std::fs::write(www.join("index.html"), format!("node-{i}\n"))
        .map_err(io_error("index.html"))?;
    let www = www.to_string_lossy().into_owned();
    let log = net.path(&format!("http-{role}.log"));
    let port = HTTP_PORT.to_string();
    let args = [
        "python3",
        "-m",
        "http.server",
        "--bind",
        "::",
        "--directory",
        www.as_str(),
        port.as_str(),
    ];
    net.spawn(&format!("http-{role}"), role, &args, &[], &log)
        .map(|_| ())
}

/// The router on the switch (FRR, one session per node, ECMP) and the `outside` client behind
/// it.
pub(super) fn add_router(net: &mut Netlab, nodes: &[LabNode]) -> Result<Frr, LabError> {
    net.add_host("router", "eth0", &["192.0.2.254/24", "2001:db8::254/64"])?;
    net.add_namespace("outside")?;
    net.link(
        ("router", "eth1", &["198.51.100.1/24", "2001:db8:ff::1/64"]),
        ("outside", "eth0", &["198.51.100.2/24", "2001:db8:ff::2/64"]),
    )?;
    net.exec_ok(
        "outside",
        &["ip", "route", "add", "default", "via", "198.51.100.1"],
    )?;
    net.exec_ok(
        "outside",
        &[
            "ip",
            "-6",
            "route",
            "add",
            "default",
            "via",
            "2001:db8:ff::1",
        ],
    )?;
    for sysctl in [
        "net.ipv4.ip_forward=1",
        "net.ipv6.conf.all.forwarding=1",
        "net.ipv4.fib_multipath_hash_policy=1",
    ] {
        net.sysctl("router", sysctl)?;
    }
    Frr::start(net, "router", &router_config(nodes))
}

/// bgpd's configuration of the router: a session per node, IPv4 and IPv6 routes over the IPv4
/// sessions (BGPPeer dualStackAddressFamily), graceful restart, 8-way ECMP.
fn router_config(nodes: &[LabNode]) -> String {
    let mut conf = String::from("hostname router\nlog stdout\n!\nbgp route-map delay-timer 0\n");
    conf += "route-map ACCEPT permit 10\n!\n";
    conf += &format!(
        "router bgp {ROUTER_AS}\n bgp router-id {ROUTER_V4}\n no bgp default ipv4-unicast\n bgp graceful-restart\n"
    );
    for node in nodes {
        conf += &format!(
            " neighbor {} remote-as {NODE_AS}\n neighbor {} timers connect 1\n",
            node.v4, node.v4
        );
    }
    for family in ["ipv4", "ipv6"] {
        conf += &format!(" address-family {family} unicast\n  maximum-paths 8\n");
        for node in nodes {
            conf += &format!(
                "  neighbor {} activate\n  neighbor {} route-map ACCEPT in\n",
                node.v4, node.v4
            );
        }
        conf += " exit-address-family\n";
    }
    conf += "!\n";
    conf
}

impl ClusterLab {
    /// Plugs a second interface `eth1` (no address) of every node into the switch (port
    /// `q-<role>`), for announcements apart from the interface the node gossips and talks to the
    /// API on. Call before starting the speakers.
    pub fn add_second_nics(&mut self) -> Result<(), LabError> {
        for node in &mut self.nodes {
            let port = format!("q-{}", node.role);
            self.net.plug(&node.role, "eth1", &port, &[])?;
            node.mac2 = Some(self.net.mac(&node.role, "eth1")?);
        }
        Ok(())
    }

    /// Takes carrier away from (or gives it back to) node `index`'s `eth1`, by setting its
    /// switch port down (or up): the node sees NO-CARRIER, as with a pulled cable.
    pub fn set_second_nic_carrier(&self, index: usize, carrier: bool) -> Result<(), LabError> {
        let port = format!("q-{}", self.node(index)?.role);
        self.net.set_link(Netlab::SWITCH, &port, carrier)
    }

    /// Makes node `index` vanish from the network, as a crashed machine would: its link goes
    /// down (its speaker, if still running, can neither gossip nor answer).
    pub fn cut_node(&self, index: usize) -> Result<(), LabError> {
        self.net.set_link(&self.node(index)?.role, "eth0", false)
    }

    /// Brings node `index`'s link back, with the routes through the router that went with it.
    pub fn restore_node(&self, index: usize) -> Result<(), LabError> {
        let role = &self.node(index)?.role;
        self.net.set_link(role, "eth0", true)?;
        if self.router.is_none() {
            return Ok(());
        }
        // IPv6 puts the link's on-link route back only once the kernel's link watcher has seen
        // the carrier, up to a second later; until then the router is unreachable.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match add_router_routes(&self.net, role) {
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                done => return done,
            }
        }
    }

    /// Takes carrier away from (or gives it back to) node `index`'s `eth0`, by setting its
    /// switch port down (or up): a pulled cable as the node sees it (NO-CARRIER); its
    /// addresses and routes stay.
    pub fn set_carrier(&self, index: usize, carrier: bool) -> Result<(), LabError> {
        let port = format!("p-{}", self.node(index)?.role);
        self.net.set_link(Netlab::SWITCH, &port, carrier)
    }

    /// Cuts node `index` off from the gossip: its namespace drops UDP 7946 in and out (one
    /// nftables table, added in one transaction). Everything else still flows.
    pub fn cut_gossip(&self, index: usize) -> Result<(), LabError> {
        let role = self.node(index)?.role.clone();
        let rules = self.net.path(&format!("gossipcut-{role}.nft"));
        std::fs::write(
            &rules,
            "table inet gossipcut {\n\
             \tchain in { type filter hook input priority 0; udp dport 7946 drop; }\n\
             \tchain out { type filter hook output priority 0; udp dport 7946 drop; }\n\
             }\n",
        )
        .map_err(io_error("nftables rules"))?;
        let rules = rules.to_string_lossy().into_owned();
        self.net.exec_ok(&role, &["nft", "-f", &rules]).map(|_| ())
    }

    /// Lets node `index`'s gossip through again.
    pub fn heal_gossip(&self, index: usize) -> Result<(), LabError> {
        let role = self.node(index)?.role.clone();
        self.net
            .exec_ok(&role, &["nft", "delete", "table", "inet", "gossipcut"])
            .map(|_| ())
    }
}
