"""fastrnn's benchmark harness and performance grid (not shipped with the package).

harness.py: problems, runners, the timing loop and the agreement check; layers.py: the 2-layer
bidirectional layers with variable lengths; grid.py: the grid S1-S6 with its targets and the sgemm
rate; ``python -m benchmarks`` (__main__.py): the command line; report.py: tables and a PNG from
its JSON; test_*_bench.py: the same problems as pytest-benchmark files.
"""
