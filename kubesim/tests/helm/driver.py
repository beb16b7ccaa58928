#!/usr/bin/env python3
"""Drives the Helm v4 engine (PyPI `helm-python-sdk`) for kubesim's Helm test.

Usage: driver.py KUBECONFIG CHART_DIR NAMESPACE ACTION [VALUES_JSON]
ACTION is one of lint, template, install, upgrade, status, uninstall. Prints one JSON
object on stdout; on a Helm error prints {"error": ..., "type": ...} and exits 2, so the
Rust test shows Helm's own message. Helm's log goes to stderr.
"""

import json
import logging
import sys

import helm_python as helm


def main() -> int:
    kubeconfig, chart_dir, namespace, action = sys.argv[1:5]
    values = json.loads(sys.argv[5]) if len(sys.argv) > 5 else None
    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG, format="helm: %(message)s")
    helm.enable_logging(logging.DEBUG)
    try:
        out = run(kubeconfig, chart_dir, namespace, action, values)
    except helm.HelmError as e:
        print(json.dumps({"error": str(e), "type": type(e).__name__}))
        return 2
    print(json.dumps(out, default=str))
    return 0


def run(kubeconfig, chart_dir, namespace, action, values):
    if action == "lint":
        return helm.lint(chart_dir, values, strict=True, namespace=namespace)
    if action == "template":
        with helm.Chart.load(chart_dir) as chart:
            return {"crds": chart.crds, "manifests": chart.render(values, name="demo", namespace=namespace)}
    with helm.Config(kubeconfig_path=kubeconfig, namespace=namespace) as cfg:
        if action == "install":
            return cfg.install(chart_dir, "demo", values, namespace=namespace, wait="watcher", timeout=20)
        if action == "upgrade":
            return cfg.upgrade(chart_dir, "demo", values, namespace=namespace, wait="watcher", timeout=20)
        if action == "status":
            return {"status": cfg.status("demo"), "history": cfg.history("demo"), "list": cfg.list()}
        if action == "uninstall":
            return cfg.uninstall("demo", wait="watcher", timeout=20)
    raise SystemExit(f"unknown action {action}")


if __name__ == "__main__":
    sys.exit(main())
