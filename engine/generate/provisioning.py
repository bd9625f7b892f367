"""Grafana provisioning: one Prometheus datasource and a file provider for the dashboards.

The dashboards never name this datasource: they pick it through their `datasource`
variable, which defaults to the provisioned uid below, so they work as provisioned and
still let a user switch to another Prometheus (or Mimir/Thanos) in the UI. generate.yml's
`grafana:` changes the uid, name, URL, folder and path (engine/generate/config.py); the
defaults are the constants below.
"""

from __future__ import annotations

from typing import Any

DATASOURCE_UID = "prometheus"
DATASOURCE_NAME = "Prometheus"
PROMETHEUS_URL = "http://127.0.0.1:9090"
# Where Grafana should find dashboards/*.json; mount or copy the directory there.
DASHBOARDS_PATH = "/var/lib/grafana/dashboards/slo-engine"
FOLDER = "SLOs"


def datasources(
    uid: str = DATASOURCE_UID, name: str = DATASOURCE_NAME, url: str = PROMETHEUS_URL
) -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": name,
                "uid": uid,
                "type": "prometheus",
                "access": "proxy",
                "url": url,
                "isDefault": True,
                "editable": False,
                "jsonData": {"timeInterval": "15s", "httpMethod": "POST"},
            }
        ],
    }


def dashboard_provider(folder: str = FOLDER, path: str = DASHBOARDS_PATH) -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "slo-engine",
                "orgId": 1,
                "folder": folder,
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 30,
                "options": {"path": path, "foldersFromFilesStructure": False},
            }
        ],
    }


def provisioning_files(
    uid: str = DATASOURCE_UID,
    name: str = DATASOURCE_NAME,
    url: str = PROMETHEUS_URL,
    folder: str = FOLDER,
    path: str = DASHBOARDS_PATH,
) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("provisioning/datasources/prometheus.yml", datasources(uid, name, url)),
        ("provisioning/dashboards/slo-engine.yml", dashboard_provider(folder, path)),
    ]
