"""jsontune: fine-tune a small language model to turn free text into JSON, and serve it fast."""

__version__ = "0.1.0"
