#!/usr/bin/env bash
# The main job (as root). First FerroLB's controller on a Kubernetes API (kubesim, since no real
# cluster can run here), driven with the real kubectl: validate the example configuration offline,
# apply the CRDs and examples, create LoadBalancer Services, show the EXTERNAL-IPs, the pools'
# counters and the Events, kill and restart the controller and show that no IP moved.
# Then the network lab (ferrolb-lab): three node namespaces running the real speaker, a client,
# an FRR router with a client behind it; a Service in L2 mode and one in BGP mode; who answers
# ARP/NDP, the router's ECMP route, requests from both clients, and the failover gap measured by
# a client probing every 10 ms while the owner node crashes.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh --demo
if ! command -v kubectl >/dev/null; then
  echo "run: kubectl not found; install it (e.g. the kubernetes-client package) first" >&2
  exit 1
fi

cargo build --release --locked -p ferrolb-controller -p ferrolb-speaker -p ferrolb-kubesim -p ferrolb-tests --bins
bin=target/release

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== ferrolb-controller validate examples/"
$bin/ferrolb-controller validate examples/

"$bin/kubesim" --listen 127.0.0.1:0 --kubeconfig-out "$work/kubeconfig" > "$work/kubesim.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [[ -s "$work/kubeconfig" ]] && break; sleep 0.05; done
export KUBECONFIG="$work/kubeconfig" HOME="$work"   # kubectl's discovery cache stays in $work
k() { kubectl "$@"; }

echo "== kubectl apply -f crds/ -f examples/"
k apply -f crds/ >/dev/null
k wait --for=condition=established crd --all >/dev/null
k create namespace ferrolb-system >/dev/null
k apply -f examples/ >/dev/null
k create namespace shop >/dev/null
k create namespace payments >/dev/null

start_controller() {
  "$bin/ferrolb-controller" run --namespace ferrolb-system > "$work/controller.log" 2>&1 &
  controller=$!
  pids+=("$controller")
}
start_controller

lb() {  # lb NAMESPACE NAME: a LoadBalancer Service on port 80
  k apply -n "$1" -f - >/dev/null <<YAML
apiVersion: v1
kind: Service
metadata: {name: $2}
spec: {type: LoadBalancer, selector: {app: $2}, ports: [{port: 80, protocol: TCP}]}
YAML
}
lb shop web
lb shop api
lb payments checkout
k annotate service -n shop api metallb.io/allow-shared-ip=shop >/dev/null
k -n shop apply -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Service
metadata:
  name: dns
  annotations:
    metallb.io/address-pool: public
    metallb.io/loadBalancerIPs: 203.0.113.53
spec:
  type: LoadBalancer
  ports: [{port: 53, protocol: UDP}]
YAML

echo "== waiting for EXTERNAL-IPs"
for _ in $(seq 200); do
  pending=$(k get svc -A -o jsonpath='{range .items[?(@.spec.type=="LoadBalancer")]}{.status.loadBalancer.ingress[0].ip}{"\n"}{end}' | grep -c '^$' || true)
  [[ "$pending" == 0 ]] && break
  sleep 0.1
done
k get svc -A
echo
k get ipaddresspools -n ferrolb-system
echo
echo "== Events on payments/checkout (events.k8s.io/v1)"
k get events.events.k8s.io -n payments -o custom-columns=TYPE:.type,REASON:.reason,OBJECT:.regarding.name,NOTE:.note

echo
echo "== SIGKILL the controller, restart it: no IP may move"
before=$(k get svc -A -o jsonpath='{range .items[*]}{.metadata.name}={.status.loadBalancer.ingress[0].ip}{"\n"}{end}')
{ kill -9 "$controller"; wait "$controller"; } 2>/dev/null || true
start_controller
lb shop late
for _ in $(seq 200); do
  [[ -n "$(k get svc -n shop late -o jsonpath='{.status.loadBalancer.ingress[0].ip}')" ]] && break
  sleep 0.1
done
after=$(k get svc -A -o jsonpath='{range .items[*]}{.metadata.name}={.status.loadBalancer.ingress[0].ip}{"\n"}{end}')
moved=$(diff <(echo "$before") <(echo "$after" | grep -v '^late=') || true)
if [[ -n "$moved" ]]; then
  echo "IPs moved after the restart:"; echo "$moved"; exit 1
fi
echo "no IP moved; the new Service 'late' got $(k get svc -n shop late -o jsonpath='{.status.loadBalancer.ingress[0].ip}')"

echo
echo "== The network lab: speakers in node namespaces, FRR, clients, failover"
"$bin/ferrolb-lab" --speaker "$bin/ferrolb-speaker" --controller "$bin/ferrolb-controller"
