"""The steps of benchmarks/calibrate_cpu.py, one module each."""
