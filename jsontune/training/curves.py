"""curves.png: training loss and eval F1 over steps, read back from metrics.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

from jsontune.io import atomic_path


def plot_curves(metrics_path: str | Path, out: str | Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(metrics_path)
    if not path.is_file():
        return None
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    loss = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    f1 = [(r["step"], r["eval_f1"]) for r in rows if "eval_f1" in r]
    fig, ax_loss = plt.subplots(figsize=(7, 4))
    if loss:
        ax_loss.plot(*zip(*loss, strict=True), color="tab:blue", label="train loss")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("train loss", color="tab:blue")
    ax_f1 = ax_loss.twinx()
    if f1:
        ax_f1.plot(*zip(*f1, strict=True), color="tab:orange", marker="o", label="eval F1")
    ax_f1.set_ylabel("eval F1", color="tab:orange")
    ax_f1.set_ylim(0, 1.05)
    fig.suptitle("jsontune train")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(out)
