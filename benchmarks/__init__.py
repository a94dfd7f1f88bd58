"""Benchmarks: each prints measured figures as JSON lines and says what it compared. Run
one from the repository root as a module: ``python -m benchmarks.decode_speed``."""
