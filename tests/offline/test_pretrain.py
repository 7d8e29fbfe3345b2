"""The warm-start corpus and loop: copy drills without the task's format, seeded and loss-lowering."""

from __future__ import annotations

from jsontune.data.numbers import parse_number
from jsontune.data.synth import generate_orders
from jsontune.offline.init_model import _build_model
from jsontune.offline.pretrain import copy_corpus, pretrain
from jsontune.offline.tokenizer import build_tokenizer
from jsontune.prompts import DEFAULT_INSTRUCTION


def test_corpus_teaches_copying_but_not_the_task_format():
    docs = copy_corpus(300, seed=1000)
    assert len(docs) == 300
    assert copy_corpus(300, seed=1000) == docs
    joined = "\n".join(docs)
    for forbidden in ("{", "}", '"producto"', "<|im_start|>", "<think>", DEFAULT_INSTRUCTION[:40]):
        assert forbidden not in joined, forbidden
    with_fields = [(o, d) for o, d in zip(generate_orders(300, seed=1000), docs, strict=True) if "producto = " in d]
    assert len(with_fields) > 100
    for order, doc in with_fields:
        assert doc.startswith(order.text + "\n\n")
        rendering = doc.removeprefix(order.text + "\n\n")
        assert sorted(rendering.split(" ; ")) == [
            f"cantidad = {order.target['cantidad']}",
            f"precio = {order.target['precio_unitario']}",
            f"producto = {order.target['producto']}",
        ]
    assert any(" => " in d and "repite: " in d for d in docs)
    drills = [line.split(" => ") for d in docs if "repite: " not in d for line in d.splitlines() if " => " in line]
    assert len(drills) > 100
    assert all(parse_number(written) == float(plain) for written, plain in drills)


def test_same_seed_same_losses():
    tokenizer = build_tokenizer(2048)
    runs = [pretrain(_build_model("tiny", tokenizer, 0), tokenizer, steps=3, seed=5, batch_size=4) for _ in "ab"]
    assert runs[0] == runs[1]
    assert len(runs[0]) == 3


def test_every_step_is_reported_for_a_progress_bar():
    from jsontune.offline.init_model import _build_model
    from jsontune.offline.pretrain import pretrain
    from jsontune.offline.tokenizer import build_tokenizer

    tokenizer = build_tokenizer(256)
    seen = []
    losses = pretrain(
        _build_model("tiny", tokenizer, 0),
        tokenizer,
        steps=3,
        seed=5,
        batch_size=4,
        on_step=lambda step, steps, loss: seen.append((step, steps, loss)),
    )
    assert seen == [(i + 1, 3, loss) for i, loss in enumerate(losses)]
