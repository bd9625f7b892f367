"""The status page in a real browser: Debian's headless Chromium loads it from a running
server, and we check what a person sees (and that a hostile payload stays text).

The screenshot is kept as a CI artifact: test-artifacts/status-page.png.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from harness.api_runtime import FakeClock, sample_runtime, serve, specs_with_descriptions
from harness.browser import MISSING, chromium_binary, dump_dom, screenshot
from harness.incidents import T0

from engine.api.app import create_app
from engine.api.deps import Access

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
# Each payload would change the document title if the browser ever ran it.
HOSTILE = (
    "<script>document.title='pwned'</script>\"><img src=x onerror=\"document.title='pwned-img'\">"
)


def require_chromium() -> None:
    if chromium_binary() is None:
        pytest.skip(MISSING)


@pytest.fixture
def status_server(tmp_path: Path):
    specs = specs_with_descriptions(
        tmp_path / "specs", {"api/latency-p95": "Latency objective. " + HOSTILE}
    )
    clock = FakeClock(T0 + 1800)
    runtime = sample_runtime(tmp_path, clock, T0, specs=specs)
    try:
        (incident,) = runtime.list_incidents("investigating", None)
        runtime.comment(incident.id, "alice", "Rolled back deploy 42; errors falling. " + HOSTILE)
        incident = runtime.get_incident(incident.id)
        public = Access(public_status_page=True)
        with serve(create_app(runtime, [], clock=clock, access=public)) as url:
            yield url, runtime, incident
    finally:
        runtime.close()


def test_a_person_sees_status_budgets_and_the_notice(status_server):
    require_chromium()
    url, runtime, incident = status_server
    dom = dump_dom(f"{url}/status")
    # The payload never ran: the title is still ours.
    titles = re.findall(r"<title>(.*?)</title>", dom, flags=re.S)
    assert titles == ["Service status"]
    assert "pwned" not in "".join(titles)
    # It is on the page as text (escaped in the serialized DOM), never as an element.
    assert "<img" not in dom and "<script" not in dom
    assert html.escape("<script>document.title='pwned'</script>", quote=False) in dom
    text = html.unescape(re.sub(r"<[^>]+>", " ", dom))
    for expected in ("api", "database", "availability", "latency-p95", "backup-freshness"):
        assert expected in text
    for label in ("Page", "Ticket", "OK", "Budget exhausted", "No data"):
        assert label in text
    assert "42 % left" in text and "exhausted (-12 %)" in text
    notice = runtime.customer_notice(incident)
    squashed = " ".join(text.split())
    for line in notice.splitlines():
        assert " ".join(line.split()) in squashed
    assert "Rolled back deploy 42; errors falling." in squashed
    assert incident.id in squashed


def test_screenshot_is_kept_and_not_blank(status_server):
    from PIL import Image, ImageStat

    require_chromium()
    url, _, _ = status_server
    ARTIFACTS.mkdir(exist_ok=True)
    shot = screenshot(f"{url}/status", ARTIFACTS / "status-page.png", (1280, 1600))
    assert shot.is_file() and shot.stat().st_size > 10_000
    with Image.open(shot) as image:
        assert image.size == (1280, 1600)
        rgb = image.convert("RGB")
        # Not blank: real variation in brightness across the page.
        assert max(ImageStat.Stat(rgb.convert("L")).stddev) > 20
        colours = rgb.getcolors(maxcolors=1 << 20) or []
        # The stylesheet loaded under the CSP: the status colours are painted. Badges and
        # bars use these exact fills (CSS variables --page, --ok, --ticket).
        painted = {c for _, c in colours}
        for name, rgb_value in {
            "page red": (0xCF, 0x22, 0x2E),
            "ok green": (0x1A, 0x7F, 0x37),
            "ticket amber": (0x9A, 0x67, 0x00),
        }.items():
            assert rgb_value in painted, f"{name} not painted: the stylesheet did not apply"
