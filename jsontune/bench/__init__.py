"""Bench: the same prompts through each engine in its own process; speed, memory and roofline tables.

`config.py` holds what a run is asked (`BenchConfig`); `runner.py` prepares the prompts, runs one
`worker.py` process per engine and returns a `BenchResult` of `BenchRow`s (`results.py`); `report.py`
turns that result into bench.json / bench.md / bench.png and the printed tables; `roofline.py` bounds
what the device could do at best (a GPU from its datasheet, the CPU from its rates `measure.py` measures at the
start, in each dtype the engines run in) and counts the fewest FLOPs the job needs.
"""
