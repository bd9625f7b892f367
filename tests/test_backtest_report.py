"""The HTML report: everything escaped, and it really renders in headless Chromium."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
from harness.browser import MISSING, chromium_binary, screenshot

from engine.backtest.labels import parse_labels
from engine.backtest.metrics import Detection, score_policy
from engine.backtest.replay import ReplayResult, make_plan, replay
from engine.backtest.report import render_report, write_report
from engine.evaluation.source import StepRates
from engine.spec.durations import Duration
from engine.spec.models import ServiceSpec

T0 = 1_704_067_200
HOUR = 3600
DAY = 86_400
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
XSS = '<script>alert("x")</script>'


def _result() -> ReplayResult:
    spec = ServiceSpec.model_validate(
        {
            "apiVersion": "slo-engine/v1",
            "service": "api",
            "tier": "critical",
            "slos": [
                {
                    "name": "availability",
                    "objective": 99.9,
                    "description": f"checkout requests {XSS}",
                    "sli": {
                        "events": {
                            "bad": 'sum(rate(x{code="500"}[{{window}}]))',
                            "total": "sum(rate(x[{{window}}]))",
                        }
                    },
                },
                {
                    "name": "quiet",
                    "objective": 99.5,
                    "sli": {"availability": {"metric": 'up{job="api"}'}},
                },
            ],
        }
    )
    slos = spec.slo_records()
    plan = make_plan(slos, T0 + 3 * DAY, T0 + 5 * DAY, Duration.parse("1m"), Duration.parse("3d"))
    step = plan.step.seconds
    times = plan.fetch_start + step + step * np.arange(round((plan.end - plan.fetch_start) / step))
    t = (times - T0) / DAY
    total = np.vstack([20 * (1 + 0.4 * np.sin(2 * np.pi * t)), np.full(times.size, 1 / 15)])
    bad = total * 0.0003
    outage = (times > T0 + 3 * DAY + 10 * HOUR) & (times <= T0 + 3 * DAY + 10 * HOUR + 1500)
    bad[0, outage] = total[0, outage] * 0.6
    slow_burn = (times > T0 + 4 * DAY + 2 * HOUR) & (times <= T0 + 4 * DAY + 14 * HOUR)
    bad[0, slow_burn] = total[0, slow_burn] * 0.004
    rates = StepRates(step=plan.step, times=times, bad=bad, total=total)
    return replay(slos, rates, plan, traces=True)


def test_report_escapes_user_text_and_shows_summary_and_plots() -> None:
    result = _result()
    labels = parse_labels(
        [{"service": "api", "start": T0 + 3 * DAY + 10 * HOUR, "end": T0 + 3 * DAY + 11 * HOUR}]
    )
    detections = [
        Detection(frozenset({"api"}), i.opened_at, i.resolved_at) for i in result.incidents
    ]
    html = render_report(
        result, [score_policy("incidents", detections, labels, result.plan.start, result.plan.end)]
    )
    assert XSS not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert html.count('src="data:image/png;base64,') == 2
    assert "INC-2024-0001" in html and "SEV1" in html
    assert "<th>pages</th>" in html and "api/availability" in html


@pytest.mark.browser
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    if chromium_binary() is None:
        pytest.skip(MISSING)
    report = write_report(_result(), tmp_path / "report.html")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = screenshot(report.resolve().as_uri(), ARTIFACTS / "backtest-report.png", (1280, 2000))
    assert shot.stat().st_size > 50_000
    pixels = mpimg.imread(shot)
    assert pixels.shape[:2] == (2000, 1280)
    gray = pixels[..., :3].mean(axis=2)
    # Not a blank page: plenty of dark (text, lines) and white (background) pixels, and
    # colour from the plots' shaded alert intervals.
    assert (gray < 0.3).mean() > 0.01
    assert (gray > 0.95).mean() > 0.5
    saturation = pixels[..., :3].max(axis=2) - pixels[..., :3].min(axis=2)
    assert (saturation > 0.2).mean() > 0.005
