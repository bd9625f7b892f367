"""Communication templates: runbook internal notification and customer notice, sandboxed,
autoescaped for HTML, overridable."""

from __future__ import annotations

from harness.incidents import T0, make_alert

from engine.incidents.config import IncidentConfig
from engine.incidents.engine import IncidentEngine
from engine.incidents.incident import Incident, IncidentStatus, Severity
from engine.incidents.render import TemplateRenderer


def _incident(**kw) -> Incident:
    base = dict(
        id="INC-2024-0007",
        service="api",
        severity=Severity.SEV1,
        status=IncidentStatus.investigating,
        summary="api/availability: error budget burning at 720.0x",
        opened_at=T0,
        slo_ids=["api/availability", "api/latency"],
        runbook_url="https://runbooks.example/api",
        dashboard_url="https://grafana.example/d/api",
    )
    base.update(kw)
    return Incident(**base)


def test_internal_notification_has_the_runbook_fields():
    text = TemplateRenderer().internal_notification(_incident(), "triggered")
    lines = text.splitlines()
    assert lines[0] == "SEV1 INCIDENT TRIGGERED — INC-2024-0007"
    assert "Service: api" in lines
    assert "Status: Investigating" in lines
    assert "Opened: 2024-03-01 00:00 UTC" in lines
    assert "Impact: SLOs api/availability, api/latency" in lines
    assert "Response target: acknowledge within 15 minutes" in lines
    assert "Incident commander: unassigned — the first responder takes command" in lines
    assert "Runbook: https://runbooks.example/api" in lines
    assert "Dashboard: https://grafana.example/d/api" in lines
    assert "Next update: within 30 minutes" in lines


def test_title():
    assert (
        TemplateRenderer().title(_incident(), "escalated")
        == "[SEV1] INC-2024-0007 escalated: api — api/availability: error budget burning at 720.0x"
    )


def test_customer_notice_states_and_no_internal_details():
    renderer = TemplateRenderer()
    investigating = renderer.customer_notice(_incident())
    assert investigating.splitlines()[0] == "Investigating — Service disruption: api"
    assert "We will post an update within 30 minutes." in investigating
    for internal in ("runbooks.example", "api/availability", "INC-2024-0007", "grafana"):
        assert internal not in investigating
    mitigating = renderer.customer_notice(
        _incident(status=IncidentStatus.mitigating, severity=Severity.SEV2)
    )
    assert mitigating.startswith("Identified — Degraded service: api")
    resolved = renderer.customer_notice(
        _incident(status=IncidentStatus.resolved, resolved_at=T0 + 5400)
    )
    assert resolved.startswith("Resolved — api")
    assert "from 2024-03-01 00:00 UTC to 2024-03-01 01:30 UTC" in resolved


def test_html_notice_is_autoescaped_text_is_not():
    evil = _incident(service='<script>alert("x")</script>')
    html = TemplateRenderer().customer_notice(evil, html=True)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    text = TemplateRenderer().customer_notice(evil)
    assert '<script>alert("x")</script>' in text


def test_override_directory(tmp_path):
    (tmp_path / "internal_notification.txt.j2").write_text(
        "{{ incident.id }} is {{ incident.severity }} — call {{ incident.commander or 'the on-call' }}"
    )
    renderer = TemplateRenderer(tmp_path)
    assert (
        renderer.internal_notification(_incident(), "triggered")
        == "INC-2024-0007 is SEV1 — call the on-call"
    )
    # Templates not overridden come from the package.
    assert renderer.customer_notice(_incident()).startswith("Investigating")
    assert renderer.check() == []


def test_broken_or_malicious_override_falls_back_to_the_builtin(tmp_path):
    (tmp_path / "title.txt.j2").write_text("{{ incident.nope }}")
    (tmp_path / "internal_notification.txt.j2").write_text(
        "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    )
    renderer = TemplateRenderer(tmp_path)
    title = renderer.title(_incident(), "triggered")
    assert title.startswith("[SEV1] INC-2024-0007 triggered")
    assert "template override title.txt.j2 failed" in title
    message = renderer.internal_notification(_incident(), "triggered")
    assert message.startswith("SEV1 INCIDENT TRIGGERED")
    assert "subclasses" not in message.split("(template override")[0]
    errors = renderer.check()
    assert len(errors) == 2 and errors[0].startswith("title.txt.j2")


def test_engine_uses_configured_templates(tmp_path):
    (tmp_path / "internal_notification.txt.j2").write_text("custom: {{ incident.id }} {{ event }}")
    engine = IncidentEngine(IncidentConfig(receivers=[{"name": "oncall"}], templates_dir=tmp_path))
    (note,) = engine.observe(T0, [make_alert()]).notifications
    assert note.message == "custom: INC-2024-0001 triggered"


def test_customer_notice_only_for_customer_facing_severities():
    engine = IncidentEngine(IncidentConfig())
    engine.observe(
        T0,
        [
            make_alert(service="api", short_error_ratio=0.9),
            make_alert(service="web", tier="standard"),
        ],
    )
    by_service = {i.service: i for i in engine.state.incidents.values()}
    assert by_service["api"].customer_notice is not None
    assert by_service["web"].customer_notice is None
