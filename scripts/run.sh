#!/usr/bin/env bash
# The main job (as root): FerroLB installed the way an operator installs it, with
# `helm install charts/ferrolb` (the Helm v4 engine from helm-python-sdk), into kubesim (no real
# cluster can run here; RBAC on), and run exactly as the installed Deployment and DaemonSet say
# by the chart "kubelet": the controllers as their ServiceAccount, one speaker per node namespace
# of the network lab. First the example configuration is checked offline; then the lab: three
# node namespaces, a client, an FRR router with a client behind it; the examples applied through
# the chart's webhook; a Service in L2 mode and one in BGP mode; who answers ARP/NDP, the router's
# ECMP route, requests from both clients; the failover gap a client probing every 10 ms sees when
# the owner node crashes; the leading controller Pod killed (no IP moves); helm upgrade (the
# speakers keep running) and helm uninstall.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh --demo
if ! command -v kubectl >/dev/null; then
  echo "run: kubectl not found; install it (e.g. the kubernetes-client package) first" >&2
  exit 1
fi

cargo build --release --locked -p ferrolb-controller -p ferrolb-speaker -p ferrolb-tests --bins
bin=target/release

echo "== ferrolb-controller validate examples/"
$bin/ferrolb-controller validate examples/

echo
echo "== The network lab, FerroLB installed with Helm"
"$bin/ferrolb-lab" --chart charts/ferrolb --speaker "$bin/ferrolb-speaker" --controller "$bin/ferrolb-controller"
