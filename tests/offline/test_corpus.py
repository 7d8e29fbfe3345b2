"""The tokenizer's corpus writes every quantity and price so that it reads back as its label."""

from __future__ import annotations

import json

from jsontune.data.numbers import value_in_text
from jsontune.offline.corpus import chat_corpus


def test_every_order_shows_its_numbers_in_its_text():
    turns = list(chat_corpus())
    assert turns == list(chat_corpus())
    users, answers = turns[0::3], turns[2::3]
    assert len(users) == len(answers) == 400
    lost = [(u, a) for u, a in zip(users, answers, strict=True) if not value_in_text(json.loads(a), u)]
    assert lost == []
    assert any("una docena" in u for u in users) and any("$" in u and "," in u for u in users)
