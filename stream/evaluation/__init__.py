"""Offline protocols and measurement: datasets, the synthetic stream, evaluate, ff19, simulate, plot, bench."""
