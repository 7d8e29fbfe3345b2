"""`jsontune`: data -> train -> merge -> predict -> eval, and bench; serve and extract to use the model.

Every verb lives in its own module; none imports torch at import time, so `jsontune --help` is fast.
"""

from __future__ import annotations

import os
import warnings

import typer

from jsontune.cli import bench, data, demo, eval, extract, init_model, merge, predict, review, serve, train
from jsontune.cli.common import RayCommand, user_errors

app = typer.Typer(
    name="jsontune",
    help="Fine-tune a small language model to turn free text into JSON, and serve it fast.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _quiet_libraries() -> None:
    """Library deprecation notes are for jsontune's developers, not its users; errors still show."""
    warnings.filterwarnings("ignore", category=FutureWarning)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


app.add_typer(data.app, name="data")
app.add_typer(review.app, name="review")
for name, fn in [
    ("init-model", init_model.init_model),
    ("train", train.train),
    ("merge", merge.merge),
    ("predict", predict.predict),
    ("eval", eval.eval_cmd),
    ("bench", bench.bench),
    ("serve", serve.serve),
    ("extract", extract.extract),
    ("demo", demo.demo),
]:
    app.command(name, cls=RayCommand if name in ("predict", "bench") else None)(user_errors(fn))


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C: temporary folders are removed, partial files kept


def main() -> None:
    import signal

    signal.signal(signal.SIGTERM, _interrupt)
    app()


if __name__ == "__main__":
    main()
