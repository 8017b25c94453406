"""Benchmarks for an OpenAI-compatible endpoint and CPU calibration of the sizing planner."""
