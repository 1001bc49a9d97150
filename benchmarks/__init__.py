"""Side-by-side benchmarks: each writes results/<name>.json; report.py turns them into RESULTS.md."""
