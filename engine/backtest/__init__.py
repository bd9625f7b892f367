"""Backtesting: replay history through the daemon's policy and incident engine."""
