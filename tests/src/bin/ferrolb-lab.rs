//! `ferrolb-lab`: the README's network demo. Builds three node namespaces on a switch with a
//! client, an FRR router and a client behind it; runs kubesim, the real controller and one real
//! speaker per node; creates a Service in L2 mode and one in BGP mode; prints what kubectl
//! shows, who answers ARP/NDP, the router's ECMP route and requests from both clients; then
//! crashes the L2 owner and prints the failover gap a client probing every 10 ms saw.
//! With `--chart DIR` (what scripts/run.sh does), FerroLB is installed with `helm install` of
//! the chart into kubesim (RBAC on) and the chart kubelet runs exactly what Helm stored; the demo
//! then also kills the leading controller Pod, upgrades and uninstalls the release.
//! Everything is torn down on exit. Needs root.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use ferrolb_netlab::{self as netlab, eventually, eventually_async};
use ferrolb_tests::chart::binaries::Daemons;
use ferrolb_tests::chart::kubelet::Kubelet;
use ferrolb_tests::chart::lab::ChartLab;
use ferrolb_tests::chart::{Helm, release_request};
use ferrolb_tests::cluster::probe;
use ferrolb_tests::cluster::{Binaries, ClusterLab, HTTP_PORT, NAMESPACE};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::json;

#[derive(Debug, Parser)]
#[command(about = "FerroLB's network lab: controller + speakers + FRR in namespaces, on kubesim")]
struct Args {
    /// The ferrolb-speaker binary.
    #[arg(long)]
    speaker: PathBuf,
    /// The ferrolb-controller binary.
    #[arg(long)]
    controller: PathBuf,
    /// kubectl to show the tables with.
    #[arg(long, default_value = "kubectl")]
    kubectl: String,
    /// Crash failovers to measure.
    #[arg(long, default_value_t = 3)]
    failovers: usize,
    /// Install FerroLB with Helm from this chart directory (charts/ferrolb) instead of starting
    /// the binaries by hand.
    #[arg(long)]
    chart: Option<PathBuf>,
}

fn section(title: &str) {
    println!("\n== {title}");
}

/// Runs the real kubectl against kubesim and prints its output.
fn kubectl(kubectl: &str, kubeconfig: &Path, home: &Path, args: &[&str]) -> anyhow::Result<()> {
    println!("$ kubectl {}", args.join(" "));
    let out = Command::new(kubectl)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .output()
        .with_context(|| format!("running {kubectl}"))?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        bail!(
            "kubectl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

async fn create_service(
    lab: &ClusterLab,
    name: &str,
    pool: &str,
    dual: bool,
) -> anyhow::Result<()> {
    let mut spec = json!({
        "type": "LoadBalancer", "selector": {"app": name},
        "ports": [{"port": HTTP_PORT, "protocol": "TCP"}],
        "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"
    });
    if dual {
        spec["clusterIPs"] = json!(["10.96.0.11", "fd00::11"]);
        spec["clusterIP"] = json!("10.96.0.11");
        spec["ipFamilies"] = json!(["IPv4", "IPv6"]);
        spec["ipFamilyPolicy"] = json!("RequireDualStack");
    }
    let service: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "annotations": {"metallb.io/address-pool": pool}},
        "spec": spec
    }))?;
    let api: Api<Service> = Api::namespaced(lab.sim.client(), "default");
    api.create(&PostParams::default(), &service).await?;
    lab.set_endpoints(name, &[0, 1, 2]).await?;
    Ok(())
}

async fn ingress(lab: &ClusterLab, name: &str, count: usize) -> anyhow::Result<Vec<IpAddr>> {
    let api: Api<Service> = Api::namespaced(lab.sim.client(), "default");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let service = api.get(name).await?;
        let ips: Vec<IpAddr> = service
            .status
            .and_then(|s| s.load_balancer)
            .and_then(|l| l.ingress)
            .unwrap_or_default()
            .iter()
            .filter_map(|i| i.ip.as_deref()?.parse().ok())
            .collect();
        if ips.len() >= count {
            return Ok(ips);
        }
        if Instant::now() > deadline {
            bail!("Service {name} got no EXTERNAL-IP within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn l2_owner(lab: &ClusterLab, ip: IpAddr, within: Duration) -> Option<(usize, String)> {
    eventually(within, Duration::from_millis(50), || {
        let mac = match ip {
            IpAddr::V4(v4) => lab.arp_owner(v4)?,
            IpAddr::V6(v6) => lab.ndp_owner(v6)?,
        };
        let index = lab
            .nodes
            .iter()
            .position(|n| n.mac.eq_ignore_ascii_case(&mac))?;
        Some((index, format!("{} ({mac})", lab.nodes[index].name)))
    })
    .await
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    if !netlab::can_run(&["arping", "ndisc6", "curl", "python3", netlab::frr::BGPD]) {
        return Ok(ExitCode::FAILURE);
    }
    let binaries = Binaries {
        speaker: args.speaker.clone(),
        controller: Some(args.controller.clone()),
    };
    section(
        "building the lab: switch, 3 node namespaces, client, FRR router (AS 64512), outside client",
    );
    let (mut lab, mut kubelet, helm) = match &args.chart {
        Some(chart) => {
            let (lab, kubelet, helm) = install_chart(&args, chart).await?;
            (lab, Some(kubelet), Some(helm))
        }
        None => {
            let mut lab = ClusterLab::start("demo", 3, true, binaries).await?;
            lab.apply_standard_config()?;
            lab.start_controller()?;
            lab.start_speakers()?;
            (lab, None, None)
        }
    };
    let home = tempfile::tempdir()?;
    let kubeconfig = lab.sim.kubeconfig_path();
    let k = |a: &[&str]| kubectl(&args.kubectl, &kubeconfig, home.path(), a);
    if kubelet.is_some() {
        k(&["get", "deployments,daemonsets,pods,leases", "-n", NAMESPACE])?;
    }
    for node in &lab.nodes {
        println!(
            "  {}: eth0 {} / {}  {}",
            node.name, node.v4, node.v6, node.mac
        );
    }

    section("two LoadBalancer Services: web (L2 pool, dual-stack) and api (BGP pool)");
    create_service(&lab, "web", "l2", true).await?;
    create_service(&lab, "api", "bgp", false).await?;
    let web = ingress(&lab, "web", 2).await?;
    let api = ingress(&lab, "api", 1).await?;
    k(&["get", "svc", "-o", "wide"])?;
    k(&[
        "get",
        "ipaddresspools,l2advertisements,bgpadvertisements,bgppeers",
        "-n",
        "ferrolb-system",
    ])?;

    let mut failures = Vec::new();
    section("L2: who answers for web");
    show_l2(&lab, &web, &mut failures).await;
    k(&["get", "servicel2statuses", "-n", "ferrolb-system"])?;

    section("BGP: the router's routes for api (ECMP over every node)");
    let api_ip = api.first().copied().context("api has an IP")?;
    show_bgp(&lab, api_ip, &mut failures).await;
    k(&["get", "servicebgpstatuses", "-n", "ferrolb-system"])?;

    section(&format!(
        "failover: the owner of {} crashes (link down + SIGKILL), {} times; a client probes every 10 ms",
        web[0], args.failovers
    ));
    failovers(
        &mut lab,
        &mut kubelet,
        web[0],
        args.failovers,
        &mut failures,
    )
    .await?;
    k(&["get", "events.events.k8s.io", "--field-selector", "regarding.name=web", "-o", "custom-columns=REASON:.reason,FROM:.reportingInstance,NOTE:.note"])
        .or_else(|_| k(&["get", "events.events.k8s.io", "-o", "custom-columns=REASON:.reason,OBJECT:.regarding.name,FROM:.reportingInstance,NOTE:.note"]))?;
    if let (Some(kubelet), Some(helm)) = (kubelet.as_mut(), helm.as_ref()) {
        chart_lifecycle(&mut lab, kubelet, helm, &k, &mut failures).await?;
    }
    Ok(report(&lab, &failures))
}

/// Builds the lab with an empty kubesim (RBAC on), runs `helm install`, lets the chart kubelet
/// start what Helm stored, and applies the examples and the lab's configuration through the
/// chart's webhook.
async fn install_chart(args: &Args, chart: &Path) -> anyhow::Result<(ClusterLab, Kubelet, Helm)> {
    let daemons = Daemons {
        controller: args.controller.clone(),
        speaker: args.speaker.clone(),
    };
    let mut lab = ChartLab::start("demo", 3, true, daemons).await?;
    lab.helm = Helm::for_chart(chart.to_path_buf())?;
    section(
        "helm install ferrolb charts/ferrolb -n ferrolb-system --create-namespace (into kubesim, RBAC on)",
    );
    let started = Instant::now();
    let release = lab.install(json!({})).await?;
    println!(
        "  release {} revision {}: {}; the chart kubelet runs {} Pods: {}",
        release["name"],
        release["revision"],
        release["status"],
        lab.kubelet.pods().len(),
        lab.kubelet
            .pods()
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let applied = lab.apply_dir(&examples, Duration::from_secs(30)).await?;
    println!(
        "  kubectl apply -f examples/ through the chart's webhook ({:.1} s after helm install): {} objects admitted",
        started.elapsed().as_secs_f64(),
        applied.lines().count()
    );
    let refused = lab
        .kubectl(&["apply", "-f", "-"], "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: bad, namespace: ferrolb-system}\nspec: {addresses: [10.0.0.5-10.0.0.1]}\n")
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_else(|| "ADMITTED (wrong)".into());
    println!(
        "  a reversed range is refused: {}",
        refused.lines().last().unwrap_or_default().trim()
    );
    lab.kubectl(&["delete", "bgppeers", "--all", "-n", NAMESPACE], "")
        .await?;
    let examples = examples.to_string_lossy().into_owned();
    lab.kubectl(&["delete", "--ignore-not-found", "-f", &examples], "")
        .await?;
    lab.apply_lab_config(Duration::from_secs(10)).await?;
    println!("  the examples replaced by the lab's configuration (pools l2 and bgp, peer router)");
    let ChartLab { lab, kubelet, helm } = lab;
    Ok((lab, kubelet, helm))
}

/// The rest of a release's life: the leading controller Pod killed (a standby takes over, no IP
/// moves), `helm upgrade` of the controller (speakers untouched), `helm uninstall`.
async fn chart_lifecycle(
    lab: &mut ClusterLab,
    kubelet: &mut Kubelet,
    helm: &Helm,
    k: &impl Fn(&[&str]) -> anyhow::Result<()>,
    failures: &mut Vec<String>,
) -> anyhow::Result<()> {
    section("the leading controller Pod is killed: the standby takes the Lease");
    kill_leader(lab, kubelet, failures).await?;
    k(&["get", "leases", "-n", NAMESPACE])?;

    section(
        "helm upgrade --set controller.logLevel=debug: the controllers roll, the speakers stay",
    );
    let kubeconfig = lab.sim.kubeconfig_path();
    let before = speaker_pids(kubelet);
    let values = json!({"controller": {"logLevel": "debug"}});
    let upgraded = helm
        .one(release_request("upgrade", &kubeconfig, NAMESPACE, values))
        .await?;
    kubelet.sync(lab).await?;
    let kept = speaker_pids(kubelet) == before;
    let verdict = if kept { "not restarted" } else { "RESTARTED" };
    println!("  revision {}: speakers {verdict}", upgraded["revision"]);
    if !kept {
        failures.push("helm upgrade of the controller restarted the speakers".into());
    }
    k(&["get", "pods", "-n", NAMESPACE])?;

    section("helm uninstall ferrolb: the binaries stop, the CRDs and your objects stay");
    let services = service_ips(lab).await.len();
    helm.one(release_request(
        "uninstall",
        &kubeconfig,
        NAMESPACE,
        serde_json::Value::Null,
    ))
    .await?;
    kubelet.sync(lab).await?;
    println!(
        "  {} Pods left running; the {services} Services keep their last status",
        kubelet.pods().len()
    );
    k(&[
        "get",
        "all,leases,secrets,configurationstates",
        "-n",
        NAMESPACE,
    ])?;
    k(&["get", "crd"])?;
    Ok(())
}

/// Kills the controller Pod holding the Lease; the standby must give a new Service an IP and
/// no IP may move.
async fn kill_leader(
    lab: &mut ClusterLab,
    kubelet: &mut Kubelet,
    failures: &mut Vec<String>,
) -> anyhow::Result<()> {
    let lease = lab.sim.get_object(
        "coordination.k8s.io/v1",
        "Lease",
        Some(NAMESPACE),
        "ferrolb-controller",
    )?;
    let leader = lease
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let before = service_ips(lab).await;
    kubelet.crash(lab, &leader).await?;
    kubelet.sync(lab).await?;
    create_service(lab, "late", "l2", false).await?;
    let late = ingress(lab, "late", 1).await;
    let mut after = service_ips(lab).await;
    after.retain(|(name, _)| name != "late");
    match late {
        Ok(ip) if after == before => println!(
            "  {leader} killed; the new leader gave 'late' {}; no IP moved",
            ip[0]
        ),
        Ok(_) => failures.push(format!(
            "IPs moved after the leader died: {before:?} → {after:?}"
        )),
        Err(e) => failures.push(format!("no IP after the leader died: {e}")),
    }
    Ok(())
}

/// The speakers' PIDs.
fn speaker_pids(kubelet: &Kubelet) -> Vec<u32> {
    kubelet
        .pods()
        .iter()
        .filter(|p| p.owner.starts_with("DaemonSet/"))
        .map(|p| p.pid)
        .collect()
}

/// `(name, first ingress IP)` of every Service in `default`.
async fn service_ips(lab: &ClusterLab) -> Vec<(String, String)> {
    let api: Api<Service> = Api::namespaced(lab.sim.client(), "default");
    let items = api
        .list(&Default::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    items
        .iter()
        .map(|s| {
            let ip = s
                .status
                .as_ref()
                .and_then(|st| st.load_balancer.as_ref())
                .and_then(|l| l.ingress.as_ref())
                .and_then(|i| i.first())
                .and_then(|i| i.ip.clone())
                .unwrap_or_default();
            (s.metadata.name.clone().unwrap_or_default(), ip)
        })
        .collect()
}

/// Who answers ARP/NDP for each of `web`'s IPs, and the client's request to each.
async fn show_l2(lab: &ClusterLab, web: &[IpAddr], failures: &mut Vec<String>) {
    for ip in web {
        match l2_owner(lab, *ip, Duration::from_secs(15)).await {
            Some((_, who)) => println!("  {ip} is answered by {who}"),
            None => failures.push(format!("nobody answers for {ip}")),
        }
        match lab.http_get("client", *ip) {
            Some(body) => println!("  client → http://{ip}:{HTTP_PORT}/ answered by {body}"),
            None => failures.push(format!("the client's request to {ip} failed")),
        }
    }
    // The ServiceL2Status objects follow the announcements: wait for them (at most 5 s)
    // before kubectl shows them.
    let _ = eventually_async(
        Duration::from_secs(5),
        Duration::from_millis(100),
        || async {
            let api: Api<DynamicObject> =
                Api::namespaced_with(lab.sim.client(), NAMESPACE, &l2_status());
            let list = api.list(&Default::default()).await.ok()?;
            (!list.items.is_empty()).then_some(())
        },
    )
    .await;
}

/// The ServiceL2Status resource.
fn l2_status() -> ApiResource {
    let gvk = GroupVersionKind::gvk("metallb.io", "v1beta1", "ServiceL2Status");
    ApiResource::from_gvk_with_plural(&gvk, "servicel2statuses")
}

/// The router's ECMP route for `api_ip`, its BGP summary, and requests from outside.
async fn show_bgp(lab: &ClusterLab, api_ip: IpAddr, failures: &mut Vec<String>) {
    let route = eventually(Duration::from_secs(30), Duration::from_millis(200), || {
        let route = lab.router_route(&api_ip.to_string());
        (route.matches("nexthop").count() == lab.nodes.len()).then_some(route)
    })
    .await;
    match route {
        Some(route) => println!("router$ ip route show {api_ip}\n{route}"),
        None => failures.push(format!(
            "no ECMP route for {api_ip}: {:?}",
            lab.router_route(&api_ip.to_string())
        )),
    }
    if let Some(summary) = lab
        .router
        .as_ref()
        .and_then(|r| r.vty("show bgp ipv4 unicast summary").ok())
    {
        println!(
            "router# show bgp ipv4 unicast summary\n{}",
            summary.trim_end()
        );
    }
    for _ in 0..3 {
        match lab.http_get("outside", api_ip) {
            Some(body) => println!("  outside → http://{api_ip}:{HTTP_PORT}/ answered by {body}"),
            None => failures.push(format!("the outside client's request to {api_ip} failed")),
        }
    }
}

/// Crashes the owner of `ip` `count` times while a client probes it; prints each gap.
async fn failovers(
    lab: &mut ClusterLab,
    kubelet: &mut Option<Kubelet>,
    ip: IpAddr,
    count: usize,
    failures: &mut Vec<String>,
) -> anyhow::Result<()> {
    let target = SocketAddr::new(ip, HTTP_PORT);
    let mut gaps = Vec::new();
    for _ in 0..count {
        let Some((index, who)) = l2_owner(lab, ip, Duration::from_secs(10)).await else {
            failures.push("no owner before a failover".into());
            break;
        };
        let name = lab.nodes[index].name.clone();
        let (probes, failure) = lab
            .crash_while_probing(index, target, Duration::from_millis(2000))
            .await?;
        match probe::gap(&probes, failure, &name) {
            Some(gap) => {
                let next = probes
                    .iter()
                    .rev()
                    .find_map(|p| p.answered_by.clone())
                    .unwrap_or_default();
                println!(
                    "  {who} crashed: {next} answered after {:.0} ms ({} probes lost)",
                    gap.as_secs_f64() * 1000.0,
                    probe::lost_after(&probes, failure)
                );
                gaps.push(gap);
            }
            None => failures.push(format!("nobody took over from {name} within 2 s")),
        }
        match kubelet.as_mut() {
            Some(kubelet) => {
                // The crashed node's speaker Pod is evicted; the DaemonSet makes a new one when
                // the node is back, and the IP returns to it (it ranks first for it).
                if let Some(pod) = kubelet.speaker_on(&name).map(|p| p.name.clone()) {
                    kubelet.crash(lab, &pod).await?;
                }
                lab.restore_node(index)?;
                kubelet.sync(lab).await?;
                let back = eventually_async(
                    Duration::from_secs(20),
                    Duration::from_millis(100),
                    || async {
                        let owner = l2_owner(lab, ip, Duration::from_millis(500)).await?;
                        (owner.0 == index).then_some(())
                    },
                )
                .await;
                if back.is_none() {
                    failures.push(format!("{ip} did not return to {name}"));
                }
            }
            None => lab.recover_node(index).await?,
        }
    }
    if let Some(max) = gaps.iter().max() {
        println!(
            "  worst gap {:.0} ms over {} failovers",
            max.as_secs_f64() * 1000.0,
            gaps.len()
        );
    }
    Ok(())
}

/// Prints the verdict; on failure, every speaker's and the controller's log.
fn report(lab: &ClusterLab, failures: &[String]) -> ExitCode {
    if failures.is_empty() {
        println!("\nlab OK");
        return ExitCode::SUCCESS;
    }
    for failure in failures {
        eprintln!("FAILED: {failure}");
    }
    for node in &lab.nodes {
        eprintln!(
            "--- speaker-{}\n{}",
            node.name,
            lab.log(&format!("speaker-{}", node.name))
        );
    }
    for entry in std::fs::read_dir(lab.net.dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("ferrolb-") && name.ends_with(".log") {
            eprintln!(
                "--- {name}\n{}",
                std::fs::read_to_string(entry.path()).unwrap_or_default()
            );
        }
    }
    eprintln!("--- controller\n{}", lab.log("controller"));
    ExitCode::FAILURE
}
