"""jsontune: fine-tune a small language model to turn free text into JSON, and serve it fast.

from jsontune import Extractor
Extractor.load("runs/merged").extract(["Necesito 100 tornillos a 50 pesos"])
"""

from jsontune.extractor import Extraction, Extractor

__version__ = "0.1.0"
__all__ = ["Extraction", "Extractor", "__version__"]
