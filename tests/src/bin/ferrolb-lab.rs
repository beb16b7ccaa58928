//! `ferrolb-lab`: the README's network demo. Builds three node namespaces on a switch with a
//! client, an FRR router and a client behind it; runs kubesim, the real controller and one real
//! speaker per node; creates a Service in L2 mode and one in BGP mode; prints what kubectl
//! shows, who answers ARP/NDP, the router's ECMP route and requests from both clients; then
//! crashes the L2 owner and prints the failover gap a client probing every 10 ms saw.
//! Everything is torn down on exit. Needs root.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use ferrolb_netlab::{self as netlab, eventually, eventually_async};
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
    let mut lab = ClusterLab::start("demo", 3, true, binaries).await?;
    let home = tempfile::tempdir()?;
    let kubeconfig = lab.sim.kubeconfig_path();
    let k = |a: &[&str]| kubectl(&args.kubectl, &kubeconfig, home.path(), a);
    lab.apply_standard_config()?;
    lab.start_controller()?;
    lab.start_speakers()?;
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
    failovers(&mut lab, web[0], args.failovers, &mut failures).await?;
    k(&["get", "events.events.k8s.io", "--field-selector", "regarding.name=web", "-o", "custom-columns=REASON:.reason,FROM:.reportingInstance,NOTE:.note"])
        .or_else(|_| k(&["get", "events.events.k8s.io", "-o", "custom-columns=REASON:.reason,OBJECT:.regarding.name,FROM:.reportingInstance,NOTE:.note"]))?;
    Ok(report(&lab, &failures))
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
        lab.recover_node(index).await?;
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
    eprintln!("--- controller\n{}", lab.log("controller"));
    ExitCode::FAILURE
}
