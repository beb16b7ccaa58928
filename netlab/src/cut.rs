//! One-way link failures: packets from one source arriving on one interface of a namespace are
//! dropped before routing (nftables, `prerouting` at raw priority), while everything else —
//! the other direction, ARP, carrier — keeps working, as when one fibre of a pair fails or a
//! switch drops one way. No interface goes down, so nothing but the protocols' own timers can
//! notice.

use crate::error::LabError;
use crate::lab::Netlab;

/// The lab's nftables table in each namespace it cuts in.
const TABLE: &str = "fl_cut";

impl Netlab {
    /// Drops, from now on, every IPv4/IPv6 packet from `source` arriving on `iface` of `role`.
    pub fn drop_from(&self, role: &str, iface: &str, source: &str) -> Result<(), LabError> {
        let family = if source.contains(':') { "ip6" } else { "ip" };
        let chain = "{ type filter hook prerouting priority -300 ; }";
        let rule = format!(
            "add table inet {TABLE}\nadd chain inet {TABLE} pre {chain}\nadd rule inet {TABLE} pre iifname \"{iface}\" {family} saddr {source} drop\n"
        );
        self.nft(role, &rule)
    }

    /// Ends every cut made in `role` with [`Netlab::drop_from`].
    pub fn heal(&self, role: &str) -> Result<(), LabError> {
        self.nft(
            role,
            &format!("add table inet {TABLE}\ndelete table inet {TABLE}\n"),
        )
    }

    /// Applies an nftables script inside `role` in one transaction.
    fn nft(&self, role: &str, script: &str) -> Result<(), LabError> {
        let path = self.path(&format!("nft-{role}.nft"));
        std::fs::write(&path, script).map_err(crate::error::io_error("nft script"))?;
        let path = path.to_string_lossy().into_owned();
        self.exec_ok(role, &["nft", "-f", &path]).map(|_| ())
    }
}
