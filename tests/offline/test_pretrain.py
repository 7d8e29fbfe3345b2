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
            'producto = "{}"'.format(order.target["producto"]),  # quoted, as a JSON value starts: see pretrain.py
        ]
    copies = [d.split("\n\nrepite: ")[1].split(" => ") for d in docs if "repite: " in d]
    assert len(copies) > 50 and all(quoted == f'"{span}"' for span, quoted in copies)
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


def test_batches_group_documents_of_like_length_and_cover_the_corpus():
    from jsontune.offline.pretrain import _batches

    tokenizer = build_tokenizer(2048)
    docs = copy_corpus(4 * 16 * 4, seed=3)  # 4 runs of 16 batches of 4
    batches = _batches(tokenizer, docs, batch_size=4, max_length=192, seed=0)
    first_pass = [next(batches) for _ in range(64)]
    padded = sum(ids.numel() for ids, _, _ in first_pass)
    real = sum(int(mask.sum()) for _, mask, _ in first_pass)
    lengths = sorted(min(len(tokenizer(d + tokenizer.pad_token)["input_ids"]), 192) for d in docs)
    assert real == sum(lengths)  # every document once a pass
    assert padded < 1.15 * real  # runs sorted by length: little padding
    for ids, mask, labels in first_pass:
        assert (labels[mask == 0] == -100).all() and (labels[mask == 1] == ids[mask == 1]).all()
