"""Bench: the same prompts through each engine in its own process; speed, memory and roofline tables.

`runner.py` prepares the prompts and runs one `worker.py` process per engine; `report.py` writes
bench.json / bench.md / bench.png; `roofline.py` bounds what the GPU could do at best.
"""
