//! `ferrolb-speaker`: makes Service IPs reachable from each node (L2: ARP/NDP; BGP: sessions with
//! the operator's routers). Built in the speaker issue; this crate holds its place in the workspace.
