"""Advice from history: objectives, latency thresholds and alert policies recommended from
what the SLIs achieved, proven by replaying them through the backtest's code path.

`slo-engine suggest` (engine/commands/suggest.py) fetches the history with the backtest's
`fetch_history`, and this package answers, per SLO: what did it achieve per period (`periods`),
which objective would it have met and at what cost in budget and alerts (`ladder`), under
which latency bucket bound does the target share of requests fall (`latency`), which alert
policy catches the known incidents with the fewest false pages (`policies`, the alert replays
in `replays`), and how the spec would change (`patch`). `advise` puts them together.
"""
