#!/usr/bin/env python3
"""Drives the Helm v4 engine (PyPI `helm-python-sdk`) for FerroLB's chart tests.

Usage: chart.py CHART_DIR < REQUESTS_JSON
REQUESTS_JSON is a list of requests, answered in order in one process (loading the engine costs
about a second). Each request is an object with an "action":
  lint      {values}                     -> Helm's lint report (strict)
  schema    {values}                     -> {"ok": true} or {"error": ...}
  render    {values, name, namespace}    -> {"manifests": {template: text}, "crds": [...]}
  install / upgrade {kubeconfig, values, name, namespace}   -> the release
  uninstall {kubeconfig, name, namespace}                   -> the uninstall answer
A Helm error in one request becomes {"error": message, "type": class name} in its answer and
the other requests still run. Prints one JSON list on stdout; Helm's log goes to stderr.
"""

import json
import logging
import sys

import helm_python as helm


def main() -> int:
    chart_dir = sys.argv[1]
    requests = json.load(sys.stdin)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="helm: %(message)s")
    helm.enable_logging(logging.INFO)
    answers = []
    for request in requests:
        try:
            answers.append(run(chart_dir, request))
        except helm.HelmError as e:
            answers.append({"error": str(e), "type": type(e).__name__})
    print(json.dumps(answers, default=str))
    return 0


def run(chart_dir, request):
    action = request["action"]
    values = request.get("values") or {}
    name = request.get("name", "ferrolb")
    namespace = request.get("namespace", "ferrolb-system")
    if action == "lint":
        return helm.lint(chart_dir, values, strict=True, namespace=namespace, with_subcharts=True)
    if action == "schema":
        with helm.Chart.load(chart_dir) as chart:
            chart.validate_schema(values)
        return {"ok": True}
    if action == "render":
        with helm.Chart.load(chart_dir) as chart:
            manifests = chart.render(values, name=name, namespace=namespace, is_install=True)
            return {"manifests": manifests, "crds": chart.crds}
    with helm.Config(kubeconfig_path=request["kubeconfig"], namespace=namespace) as cfg:
        # No wait: nothing runs Pods in kubesim; the test's chart kubelet starts the binaries.
        if action == "install":
            return cfg.install(
                chart_dir, name, values, namespace=namespace, create_namespace=True, timeout=60
            )
        if action == "upgrade":
            return cfg.upgrade(chart_dir, name, values, namespace=namespace, timeout=60)
        if action == "uninstall":
            return cfg.uninstall(name, timeout=60)
    raise SystemExit(f"unknown action {action}")


if __name__ == "__main__":
    sys.exit(main())
