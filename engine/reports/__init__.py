"""The monthly SLO report: compliance history (the store's daily rows, or Prometheus
history rebuilt into the same rows) summed per SLO, rendered as Markdown, HTML or JSON."""
