"""Benchmarks: seeded simulated cohorts, genolake against the tools people use instead."""
