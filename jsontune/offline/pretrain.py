"""A warm start that stands in for pretraining: teach a random model to copy spans and numbers from a text.

    jsontune init-model --preset tiny --out runs/tiny --pretrain-steps 600

A random-init model cannot copy a product name or a price out of a text, and LoRA cannot build that
ability in a CPU budget; a real base model learnt it in pretraining. Here a few hundred steps of
full-parameter causal-LM training on a synthetic corpus give it: order texts followed by a plain
rendering of their fields ('producto = "X" ; cantidad = N ; precio = P', fields in random order), copy
drills ('repite: ... => "..."') and number rewritings ("$1.250,50 => 1250.5"). The corpus has no chat
template, no instruction and no JSON, so fine-tuning still has to teach the task's prompt and format.

Copies are quoted because a value inside JSON starts without its word's space: the text's "tuercas M10" is
`Ġt uer cas ĠM 1 0` and the JSON's `":"tuercas M10` is `":" t uer cas ĠM 1 0`. A model that only ever copied
`Ġt` cannot start the copy there, and since `t` never occurs in the text, it cannot continue it either.
Quoted copies teach that step: on the demo, 800 quoted steps in batches of like length fine-tune to a better
test F1, in less time, than 1000 plain ones, and 500 steps are too few for copying to emerge (the figures:
docs/BENCHMARKS.md, "The demo's time"). The product stays mostly out of reach: the fine-tuned model starts it
from the names it saw in training.
"""

from __future__ import annotations

import math
import random
from typing import Any

from jsontune.data.numbers import write_number

# The field names as the corpus writes them: not the JSON keys, so the task format stays unseen.
_FIELDS = (("producto", "producto"), ("cantidad", "cantidad"), ("precio_unitario", "precio"))


def _number(value: int | float) -> str:
    """A number as the JSON answer will write it (1250, 12.5), without the JSON around it."""
    return str(value)


def _spanish(value: int | float, rng: random.Random) -> str:
    """`value` as people write it: "1.250,50", "1,250.50", "1250", "$ 12,99"."""
    grouped, spanish = rng.random() >= 0.5, rng.random() < 0.6
    text = write_number(value, spanish=spanish, grouped=grouped, cents=isinstance(value, float))
    return rng.choice(("{}", "${}", "$ {}", "USD {}", "{} pesos", "S/ {}", "{} €")).format(text)


def _fields_doc(text: str, target: dict[str, Any], rng: random.Random) -> str:
    fields = list(_FIELDS)
    rng.shuffle(fields)
    values = [
        f'{name} = "{target[key]}"' if key == "producto" else f"{name} = {_number(target[key])}" for key, name in fields
    ]
    return f"{text}\n\n{' ; '.join(values)}"


def _copy_doc(text: str, rng: random.Random) -> str:
    words = text.split()
    start = rng.randrange(len(words))
    span = " ".join(words[start : start + rng.randint(1, 6)])
    return f'{text}\n\nrepite: {span} => "{span}"'


def _numbers_doc(rng: random.Random) -> str:
    lines = []
    for _ in range(rng.randint(3, 6)):
        value: int | float = rng.choice((rng.randint(1, 99), rng.randint(100, 20000), round(rng.uniform(0.5, 9999), 2)))
        value = int(value) if value == int(value) else value
        lines.append(f"{_spanish(value, rng)} => {_number(value)}")
    return "\n".join(lines)


def copy_corpus(n: int, seed: int) -> list[str]:
    """`n` documents: half order texts with their fields, a quarter copy drills, a quarter number drills."""
    from jsontune.data.synth import generate_orders

    rng = random.Random(seed)
    orders = generate_orders(n, seed)
    docs = []
    for order in orders:
        kind = rng.random()
        if kind < 0.5:
            docs.append(_fields_doc(order.text, order.target, rng))
        elif kind < 0.75:
            docs.append(_copy_doc(order.text, rng))
        else:
            docs.append(_numbers_doc(rng))
    return docs


def _batches(tokenizer: Any, docs: list[str], batch_size: int, max_length: int, seed: int):
    """Endless batches of token ids (right-padded) and labels (-100 on padding). Each pass shuffles the documents,
    sorts every run of 16 batches' worth by length and deals those out as batches, in random order: the corpus
    runs from 10 to 200 tokens, and batches drawn at random were half padding (2,800 against 4,860 padded tokens
    a step, for the same 2,600 real ones)."""
    import torch

    ids = [tokenizer(doc + tokenizer.pad_token)["input_ids"][:max_length] for doc in docs]
    rng = random.Random(seed)
    run = batch_size * 16
    while True:
        order = list(range(len(ids)))
        rng.shuffle(order)
        order = [j for i in range(0, len(order), run) for j in sorted(order[i : i + run], key=lambda j: len(ids[j]))]
        batches = [order[i : i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]
        rng.shuffle(batches)
        for batch in batches:
            rows = [ids[j] for j in batch]
            width = max(map(len, rows))
            input_ids = torch.full((batch_size, width), tokenizer.pad_token_id)
            labels = torch.full((batch_size, width), -100)
            mask = torch.zeros((batch_size, width), dtype=torch.long)
            for r, row in enumerate(rows):
                input_ids[r, : len(row)] = labels[r, : len(row)] = torch.tensor(row)
                mask[r, : len(row)] = 1
            yield input_ids, mask, labels


def pretrain(
    model: Any,
    tokenizer: Any,
    steps: int,
    seed: int,
    lr: float = 3e-3,
    batch_size: int = 32,
    max_length: int = 192,
    warmup: float = 0.05,
    on_step: Any = None,
) -> list[float]:
    """Train every parameter of `model` for `steps` AdamW steps on the copy corpus; return the per-step losses.

    The corpus uses orders drawn with `seed + 1000`, so they differ from the demo's data (seed 0).
    `on_step(step, steps, loss)` is called after every step (for a progress bar).
    """
    import torch

    torch.manual_seed(seed)
    docs = copy_corpus(max(batch_size * steps // 3, batch_size * 8), seed + 1000)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.95))
    warm = max(1, int(steps * warmup))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, steps - warm))),
    )
    model.train()
    losses = []
    batches = _batches(tokenizer, docs, batch_size, max_length, seed)
    for _ in range(steps):
        input_ids, mask, labels = next(batches)
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if on_step:
            on_step(len(losses), steps, losses[-1])
    return losses
