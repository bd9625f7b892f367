"""Generated artifacts from the specs: Prometheus rules, Alertmanager config, Grafana
dashboards and provisioning. Entry point: `engine.generate.pipeline.generate(slos)`, which
returns every file as (root, path, text); `engine.generate.writer` writes or checks them."""
