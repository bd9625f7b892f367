"""The backtest corpus: realistic counters with known incidents (tests/test_backtest_corpus.py,
bench/bench_corpus.py). `counters` renders jobs — noisy seasonal traffic, incidents, and the
scrape-level quirks of real systems: process restarts, scrape gaps, relabel duplicates — as
OpenMetrics for promtool; `scenarios` is the corpus itself, each case with its spec and its
labelled incidents."""
