"""How fast is the incident engine for backtests? Prints JSON.

Scenario: 200 SLOs on 50 services, a rolling set of ~10 % firing (outages starting and
stopping), one observe() per simulated 30 s evaluation, default config with receivers, plus
a SQLite apply() rate for the daemon path.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

# The test harness is not part of the package: import it from tests/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from harness.incidents import T0, make_alert

from engine.incidents.config import IncidentConfig
from engine.incidents.engine import IncidentEngine
from engine.store.sqlite import SQLiteStore

SERVICES = 50
SLOS_PER_SERVICE = 4
STEPS = 5_000


def _alerts(step: int):
    alerts = []
    for s in range(SERVICES):
        # Each service is in trouble for 40 of every 400 steps, staggered.
        if (step + s * 37) % 400 < 40:
            for k in range(SLOS_PER_SERVICE):
                alerts.append(
                    make_alert(
                        service=f"svc{s}", slo=f"slo{k}", short_error_ratio=0.6 if k == 0 else 0.05
                    )
                )
    return alerts


def main() -> None:
    config = IncidentConfig(receivers=[{"name": "oncall"}, {"name": "team-lead", "severities": []}])
    inputs = [_alerts(i) for i in range(STEPS)]
    engine = IncidentEngine(config)
    notifications = 0
    start = time.perf_counter()
    for i, alerts in enumerate(inputs):
        notifications += len(engine.observe(T0 + 30 * i, alerts).notifications)
    elapsed = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore.in_state_dir(tmp)
        engine = IncidentEngine(config, store.load_state())
        applied = 500
        t = time.perf_counter()
        for i in range(applied):
            store.apply(engine.observe(T0 + 30 * i, inputs[i]))
        apply_elapsed = time.perf_counter() - t
        store.close()

    print(
        json.dumps(
            {
                "benchmark": "incident_engine_observe",
                "slos": SERVICES * SLOS_PER_SERVICE,
                "steps": STEPS,
                "mean_firing_alerts": sum(map(len, inputs)) / STEPS,
                "notifications": notifications,
                "observe_per_second": round(STEPS / elapsed),
                "observe_ms": round(elapsed / STEPS * 1000, 3),
                "sqlite_observe_and_apply_per_second": round(applied / apply_elapsed),
            }
        )
    )


if __name__ == "__main__":
    main()
