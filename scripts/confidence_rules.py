"""Which rule turns a field's token probabilities into its confidence: min, product or mean, by measurement.

    .venv/bin/python scripts/confidence_rules.py --model runs/demo/merged --gold runs/demo/data/test.jsonl

Generates once (greedy, with log-probs), then scores every field of every row under each rule of
`jsontune.confidence.RULES` and prints, per rule, the AUROC of confidence for "this field is correct", the
auto-accept coverage at 95 % precision and the share of wrong fields that the least confident 20 % of rows
hold. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json

from jsontune import Extractor
from jsontune.confidence import RULES, field_confidences, token_spans
from jsontune.data import load_records
from jsontune.metrics import auroc, auto_accept, leaf_correctness
from jsontune.parsing import extract_json
from jsontune.serving.base import GenerationParams
from jsontune.serving.settings import EngineSettings


def measure(confidences: list[dict], predictions: list, golds: list[dict]) -> dict:
    scores, correct, rows = [], [], []
    for fields, prediction, gold in zip(confidences, predictions, golds, strict=True):
        leaves = leaf_correctness(prediction, gold)
        numbers = [fields.get(path) for path, _ in leaves]
        scores += [c for c in numbers if c is not None]
        correct += [ok for (_, ok), c in zip(leaves, numbers, strict=True) if c is not None]
        known = [c for c in numbers if c is not None]
        rows.append((min(known) if known else -1.0, sum(not ok for _, ok in leaves)))
    rows.sort()
    wrong = sum(w for _, w in rows)
    caught = sum(w for _, w in rows[: round(0.2 * len(rows))])
    accepted = auto_accept(scores, correct, 0.95)
    return {
        "fields": len(scores),
        "auroc": auroc(scores, correct),
        "coverage_at_95": accepted["coverage"],
        "wrong_fields_in_least_confident_20pct_rows": f"{caught}/{wrong}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--gold", required=True)
    parser.add_argument("--engine", default="hf")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args()
    records = load_records(args.gold).records
    params = GenerationParams(max_new_tokens=args.max_new_tokens, logprobs=True)
    with Extractor.load(args.model, args.engine, params=params, settings=EngineSettings(dtype=args.dtype)) as ex:
        generations = ex.generate([r.text for r in records])
        spans = [token_spans(ex.tokenizer, g.token_ids, stopped=g.finish_reason == "stop") for g in generations]
    predictions = [extract_json(g.text) for g in generations]
    golds = [r.target for r in records]
    results = {}
    for rule in RULES:
        confidences = [
            field_confidences(g.text, s, list(g.logprobs), rule=rule) for g, s in zip(generations, spans, strict=True)
        ]
        results[rule] = measure(confidences, predictions, golds)
    for rule, result in results.items():
        print(
            f"{rule:8s} "
            + "  ".join(f"{k} {v if not isinstance(v, float) else round(v, 3)}" for k, v in result.items())
        )
    print(json.dumps({"model": args.model, "gold": args.gold, "engine": args.engine, "rules": results}))


if __name__ == "__main__":
    main()
