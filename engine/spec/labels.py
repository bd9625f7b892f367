"""Alert label names the engine reserves, known to the spec loader so it can warn early.

Routing (severity), inhibition (service, slo), incident identity and the generated rules
(long_window, short_window) rely on these labels. A spec's per-severity labels never replace
them: a reserved name is carried as `spec_<name>` instead (Sloth specs often set
`severity: critical` on the page alert; here severity is page|ticket). The loader warns.
"""

RESERVED_ALERT_LABELS = frozenset(
    {"alertname", "service", "slo", "severity", "tier", "long_window", "short_window"}
)
RENAMED_LABEL_PREFIX = "spec_"
