//! The Kubernetes objects of the cluster lab: Node objects and speaker Pods (through kubesim's
//! fixture path), FerroLB's standard configuration, and LoadBalancer Services with their
//! EndpointSlices and statuses (through the API, as the controller would write them).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferrolb_kubesim::KubeSim;
use ferrolb_netlab::LabError;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::fixture;
use super::{BGP_POOL, ClusterLab, HTTP_PORT, L2_POOL, NAMESPACE, NODE_AS, ROUTER_AS, ROUTER_V4};

/// Creates the Node object of a lab node: Ready, with its two InternalIPs.
pub(super) fn create_node(
    sim: &KubeSim,
    name: &str,
    v4: Ipv4Addr,
    v6: Ipv6Addr,
) -> Result<(), LabError> {
    sim.create_object(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "addresses": [{"type": "InternalIP", "address": v4.to_string()},
                          {"type": "InternalIP", "address": v6.to_string()},
                          {"type": "Hostname", "address": name}],
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    }))
    .map(|_| ())
    .map_err(fixture("node"))
}

impl ClusterLab {
    /// The Pod object node `node`'s speaker runs "in" (created once, kept across restarts like a
    /// container restart): its name and UID, which the speaker puts in its objects' ownerRefs.
    pub fn speaker_pod(&self, node: &str) -> Result<(String, String), LabError> {
        let name = format!("ferrolb-speaker-{node}");
        let existing = self
            .sim
            .get_object("v1", "Pod", Some(NAMESPACE), &name)
            .ok()
            .flatten();
        let pod = match existing {
            Some(pod) => pod,
            None => self
                .sim
                .create_object(json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": NAMESPACE},
                    "spec": {"nodeName": node, "containers": [{"name": "speaker", "image": "ferrolb-speaker"}]}
                }))
                .map_err(fixture("speaker Pod"))?,
        };
        let uid = pod["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        Ok((name, uid))
    }

    /// Creates an object through kubesim's fixture path.
    pub fn create(&self, object: Value) -> Result<(), LabError> {
        self.sim
            .create_object(object)
            .map(|_| ())
            .map_err(fixture("object"))
    }

    /// The IP pool, L2 and BGP configuration of the lab: pool `l2` with an L2Advertisement
    /// naming `eth0` (MetalLB skips veth-like names by default; ours are called eth0 anyway),
    /// and pool `bgp` with a BGPPeer to the router and a BGPAdvertisement.
    pub fn apply_standard_config(&self) -> Result<(), LabError> {
        let object = |kind: &str, name: &str, spec: Value| {
            let version = if kind == "BGPPeer" {
                "metallb.io/v1beta2"
            } else {
                "metallb.io/v1beta1"
            };
            json!({"apiVersion": version, "kind": kind, "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec})
        };
        self.create(object("IPAddressPool", "l2", json!({"addresses": L2_POOL})))?;
        self.create(object(
            "L2Advertisement",
            "l2",
            json!({"ipAddressPools": ["l2"], "interfaces": ["eth0"]}),
        ))?;
        self.create(object(
            "IPAddressPool",
            "bgp",
            json!({"addresses": BGP_POOL}),
        ))?;
        self.create(object(
            "BGPPeer",
            "router",
            json!({"myASN": NODE_AS, "peerASN": ROUTER_AS, "peerAddress": ROUTER_V4.to_string(), "holdTime": "9s",
                    "dualStackAddressFamily": true, "enableGracefulRestart": true}),
        ))?;
        self.create(object(
            "BGPAdvertisement",
            "bgp",
            json!({"ipAddressPools": ["bgp"], "communities": ["64512:100"]}),
        ))?;
        Ok(())
    }

    /// Creates a LoadBalancer Service `default/NAME` with endpoints on `endpoint_nodes`; with
    /// `ips`, also writes its status as the controller would.
    pub async fn create_service(
        &self,
        name: &str,
        annotations: Value,
        local: bool,
        endpoint_nodes: &[usize],
        ips: &[IpAddr],
    ) -> Result<(), kube::Error> {
        let client = self.sim.client();
        let policy = if local { "Local" } else { "Cluster" };
        let service: Service = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "annotations": annotations},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": policy,
                     "ports": [{"port": HTTP_PORT, "protocol": "TCP"}], "selector": {"app": name}}
        }))
        .map_err(kube::Error::SerdeError)?;
        let services: Api<Service> = Api::namespaced(client.clone(), "default");
        services.create(&PostParams::default(), &service).await?;
        self.set_endpoints(name, endpoint_nodes).await?;
        if !ips.is_empty() {
            self.set_ingress(name, ips).await?;
        }
        Ok(())
    }

    /// Writes `status.loadBalancer.ingress` of `default/NAME`.
    pub async fn set_ingress(&self, name: &str, ips: &[IpAddr]) -> Result<(), kube::Error> {
        let services: Api<Service> = Api::namespaced(self.sim.client(), "default");
        let ingress: Vec<Value> = ips.iter().map(|ip| json!({"ip": ip.to_string()})).collect();
        let patch = json!({"status": {"loadBalancer": {"ingress": ingress}}});
        services
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
    }

    /// Replaces the EndpointSlice of `default/NAME`: one ready endpoint on each given node.
    pub async fn set_endpoints(&self, name: &str, nodes: &[usize]) -> Result<(), kube::Error> {
        let endpoints: Vec<Value> = nodes
            .iter()
            .filter_map(|i| self.nodes.get(*i))
            .enumerate()
            .map(|(k, n)| json!({"addresses": [format!("10.244.{}.{}", k + 1, k + 10)], "nodeName": n.name, "conditions": {"ready": true}}))
            .collect();
        let slice: EndpointSlice = serde_json::from_value(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("{name}-lab"), "namespace": "default",
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "endpoints": endpoints,
            "ports": [{"port": HTTP_PORT, "protocol": "TCP"}]
        }))
        .map_err(kube::Error::SerdeError)?;
        let api: Api<EndpointSlice> = Api::namespaced(self.sim.client(), "default");
        let params = PatchParams::apply("ferrolb-lab").force();
        api.patch(&format!("{name}-lab"), &params, &Patch::Apply(&slice))
            .await
            .map(|_| ())
    }
}

/// Every LoadBalancer Service's `status.loadBalancer.ingress` IPs: `namespace/name` → IPs
/// (empty while it has none).
pub type Assignments = BTreeMap<String, Vec<IpAddr>>;

impl ClusterLab {
    /// The IPs of every LoadBalancer Service, as the API server holds them now.
    pub async fn lb_assignments(&self) -> Result<Assignments, kube::Error> {
        let services: Api<Service> = Api::all(self.sim.client());
        let list = services.list(&ListParams::default()).await?;
        Ok(list
            .items
            .into_iter()
            .filter(|s| {
                s.spec.as_ref().and_then(|spec| spec.type_.as_deref()) == Some("LoadBalancer")
            })
            .map(|s| {
                let key = format!(
                    "{}/{}",
                    s.metadata.namespace.unwrap_or_default(),
                    s.metadata.name.unwrap_or_default()
                );
                let ips = s
                    .status
                    .and_then(|st| st.load_balancer)
                    .and_then(|lb| lb.ingress)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|i| i.ip.as_deref()?.parse().ok())
                    .collect();
                (key, ips)
            })
            .collect())
    }

    /// Takes the last node out of the cluster as a decommissioned machine leaves it: its
    /// speaker stops (SIGTERM), its speaker Pod goes (and with it, through the ownerRefs, the
    /// speaker's ConfigurationState and status objects), its Node object goes, and its link
    /// goes down. Its namespace stays until the lab ends.
    pub async fn retire_last_node(&mut self) -> Result<(), LabError> {
        let index = self.nodes.len().saturating_sub(1);
        let name = self.node(index)?.name.clone();
        self.stop_speaker(index, "TERM")?;
        let deleted = |what: &'static str| {
            move |e: kube::Error| LabError::Command {
                command: format!("deleting {what}"),
                stderr: e.to_string(),
            }
        };
        let pods: Api<Pod> = Api::namespaced(self.sim.client(), NAMESPACE);
        pods.delete(&format!("ferrolb-speaker-{name}"), &DeleteParams::default())
            .await
            .map_err(deleted("the speaker Pod"))?;
        let nodes: Api<Node> = Api::all(self.sim.client());
        nodes
            .delete(&name, &DeleteParams::default())
            .await
            .map_err(deleted("the Node"))?;
        self.cut_node(index)?;
        self.nodes.pop();
        Ok(())
    }
}
