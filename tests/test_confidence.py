import math

import pytest
from tokenizers import pre_tokenizers

from jsontune.confidence import DEFAULT_RULE, RULES, field_confidences, row_confidence, token_spans
from jsontune.offline.tokenizer import build_tokenizer
from jsontune.serving.base import decode_output

HIGH, LOW = math.log(0.9), math.log(0.2)


@pytest.fixture(scope="module")
def tok():
    """The tiny byte-level BPE tokenizer init-model builds (Qwen3's split regex and added tokens)."""
    return build_tokenizer(2048)


def byte_ids(tok, text):
    """`text` written one byte a token, as a model may write a character its vocabulary has whole."""
    [(chars, _)] = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False).pre_tokenize_str(text)
    return tok.convert_tokens_to_ids(list(chars))


def generate(tok, *pieces):
    """A generation written piece by piece: (text, logprob) pieces (ids of their own, every token of a piece the
    same logprob; a list of logprobs gives one a token), or ids as they are, at HIGH. Returns the raw output, its
    token spans and the logprobs."""
    ids, logprobs = [], []
    for piece in pieces:
        if isinstance(piece, tuple):
            text, logprob = piece
            new = tok.encode(text)
            ids += new
            logprobs += logprob if isinstance(logprob, list) else [logprob] * len(new)
            assert len(ids) == len(logprobs), f"{text!r} has {len(new)} tokens"
        else:
            ids += piece
            logprobs += [HIGH] * len(piece)
    return decode_output(tok, ids), token_spans(tok, ids), logprobs, ids


def written(text, spans):
    return [text[start:end] for start, end in spans]


@pytest.mark.parametrize(
    "text",
    [
        '{"producto": "A", "cantidad": 1.500, "precio_unitario": 50}',
        '<think>\n\n</think>\n\n```json\n{"producto": "Cañería é", "nota": "tubo \\"x\\u00e9"}\n```',
        "€ 😀 Ω señal",
    ],
    ids=["order", "think-fence-escapes", "multibyte"],
)
def test_spans_tile_the_decoded_text_prefix_by_prefix(tok, text):
    ids = tok.encode(text)
    spans = token_spans(tok, ids)
    assert "".join(written(text, spans)) == text == decode_output(tok, ids)
    assert [end for _, end in spans] == [len(decode_output(tok, ids[: k + 1])) for k in range(len(ids))]


def test_a_byte_token_writes_nothing_and_the_token_that_completes_the_character_writes_it(tok):
    ids = tok.encode("Ca") + byte_ids(tok, "ñ") + tok.encode("ería") + byte_ids(tok, "€")
    spans = token_spans(tok, ids)
    assert decode_output(tok, ids) == "Cañería€"
    assert written("Cañería€", spans) == ["C", "a", "", "ñ", "ería", "", "", "€"]


def test_special_tokens_stop_token_and_an_unfinished_last_character_write_nothing(tok):
    eos = tok.eos_token_id
    ids = [tok.convert_tokens_to_ids("<|im_start|>"), *tok.encode('{"a": 1}'), *byte_ids(tok, "é")[:1]]
    text = decode_output(tok, ids)
    assert text == '{"a": 1}'  # decode_output drops the unfinished é
    spans = token_spans(tok, ids)
    assert spans[0] == (0, 0) and spans[-1] == (len(text), len(text))
    assert "".join(written(text, spans)) == text
    # With `stopped`, the last token is not decoded, even one that is not special, as decode_output has it.
    for last in (eos, tok.encode("x")[0]):
        stopped = token_spans(tok, [*tok.encode("hola"), last], stopped=True)
        assert stopped[-1] == (4, 4) and "".join(written("hola", stopped)) == "hola"
        assert decode_output(tok, [*tok.encode("hola"), last], stopped=True) == "hola"


def test_each_value_counts_its_own_characters_and_the_token_that_ends_it(tok):
    # The two 5s are the same text: each must count the tokens that wrote it, not the first 5 found.
    text, spans, logprobs, _ = generate(
        tok,
        ('{"producto": "', HIGH),
        ("A", math.log(0.8)),
        ('"', math.log(0.7)),
        (', "cantidad": ', HIGH),
        ("5", math.log(0.6)),
        (",", math.log(0.5)),
        (' "precio_unitario": ', HIGH),
        ("5", math.log(0.4)),
        ("}", math.log(0.3)),
    )
    assert text == '{"producto": "A", "cantidad": 5, "precio_unitario": 5}'
    confidences = field_confidences(text, spans, logprobs, rule="min")
    assert confidences == pytest.approx({"producto": 0.7, "cantidad": 0.5, "precio_unitario": 0.3})
    assert row_confidence(confidences) == pytest.approx(0.3)


def test_a_repeated_key_counts_the_value_json_keeps(tok):
    text, spans, logprobs, _ = generate(tok, ('{"cantidad": ', HIGH), ("5", LOW), (', "cantidad": 7}', HIGH))
    assert field_confidences(text, spans, logprobs, rule="min") == pytest.approx({"cantidad": 0.9})


def test_the_rules_on_a_known_value(tok):
    text, spans, logprobs, _ = generate(tok, ('{"cantidad": ', LOW), ("100", [-0.1, -0.2, -0.3]), ("}", -0.4))
    confidences = {
        rule: field_confidences(text, spans, logprobs, rule)["cantidad"] for rule in ("min", "product", "mean")
    }
    assert confidences == pytest.approx({"min": math.exp(-0.4), "product": math.exp(-1.0), "mean": math.exp(-0.25)})


def test_a_number_written_with_a_dot_counts_every_character_of_its_literal(tok):
    text, spans, logprobs, _ = generate(
        tok, ('{"cantidad": ', LOW), ("1.500", [HIGH, math.log(0.3), HIGH, HIGH, HIGH]), ("}", HIGH)
    )
    assert text == '{"cantidad": 1.500}'
    assert field_confidences(text, spans, logprobs, rule="min") == pytest.approx({"cantidad": 0.3})


def test_accents_written_byte_by_byte_count_their_bytes(tok):
    # The value opens with a character written in two byte tokens: the first writes nothing, and still counts.
    text, spans, logprobs, ids = generate(
        tok, ('{"producto": "', HIGH), byte_ids(tok, "ñ"), ("u é", HIGH), ('"}', HIGH)
    )
    first_byte = ids.index(byte_ids(tok, "ñ")[0])
    assert spans[first_byte][0] == spans[first_byte][1]
    logprobs[first_byte] = math.log(0.25)
    assert text == '{"producto": "ñu é"}'
    assert field_confidences(text, spans, logprobs, rule="min") == pytest.approx({"producto": 0.25})
    # The opening quote's token is not the value's.
    logprobs[first_byte] = HIGH
    logprobs[first_byte - 1] = LOW
    assert field_confidences(text, spans, logprobs, rule="min") == pytest.approx({"producto": 0.9})


def test_escapes_count_as_written(tok):
    text, spans, logprobs, _ = generate(
        tok, ('{"nota": "tubo ', HIGH), ('\\"', HIGH), ("x\\u00e", HIGH), ("9", math.log(0.35)), ('"}', HIGH)
    )
    assert text == '{"nota": "tubo \\"x\\u00e9"}'
    assert field_confidences(text, spans, logprobs, rule="min") == pytest.approx({"nota": 0.35})


def test_nested_objects_lists_and_empty_containers(tok):
    text, spans, logprobs, _ = generate(
        tok,
        ('{"cliente": {"nombre": "', HIGH),
        ("Ana", math.log(0.6)),
        ('"}, "items": [{"producto": "', HIGH),
        ("A", math.log(0.4)),
        ('"}, {"producto": "', HIGH),
        ("B", math.log(0.8)),
        ('"}], "notas": ', HIGH),
        ("[]", math.log(0.5)),
        (', "urgente": ', HIGH),
        ("true", math.log(0.45)),
        ("}", LOW),  # true ends itself: the brace after it is not its token
    )
    assert field_confidences(text, spans, logprobs, rule="min") == pytest.approx(
        {"cliente.nombre": 0.6, "items[].producto": 0.4, "notas": 0.5, "urgente": 0.45}
    )


def test_the_answer_counts_not_a_copy_in_the_thinking_or_the_prose(tok):
    text, spans, logprobs, _ = generate(
        tok,
        ('<think>\n{"producto": "A"}\n</think>\n\nClaro, el producto "', HIGH),
        ("A", LOW),
        ('":\n```json\n{"producto": "', HIGH),
        ("A", math.log(0.65)),
        ('"}\n```\nListo, {"producto": "', HIGH),
        ("A", LOW),
        ('"}', HIGH),
    )
    assert field_confidences(text, spans, logprobs, rule="min") == pytest.approx({"producto": 0.65})


@pytest.mark.parametrize(
    "answer",
    ["{'producto': 'A', 'cantidad': 100}", '{"producto": "A", "cantidad": 10'],
    ids=["single-quotes", "truncated"],
)
def test_a_repaired_object_has_no_confidence(tok, answer):
    text, spans, logprobs, _ = generate(tok, (answer, HIGH))
    confidences = field_confidences(text, spans, logprobs, rule="min")
    assert confidences == {"producto": None, "cantidad": None}
    assert row_confidence(confidences) is None


def test_an_unfinished_last_character_does_not_break_the_spans(tok):
    text, spans, logprobs, ids = generate(tok, ('{"cantidad": 7}', HIGH), byte_ids(tok, "é")[:1])
    logprobs[-1] = math.log(0.01)  # dropped by decode_output: it wrote nothing of the answer
    assert text == '{"cantidad": 7}' and spans[-1] == (len(text), len(text))
    assert field_confidences(text, spans, logprobs, rule="min") == pytest.approx({"cantidad": 0.9})


def test_no_object_and_bad_input(tok):
    text, spans, logprobs, _ = generate(tok, ("no hay JSON", HIGH))
    assert field_confidences(text, spans, logprobs, rule="min") == {}
    assert row_confidence({}) is None
    with pytest.raises(ValueError, match="pair up"):
        field_confidences(text, spans, logprobs[:-1])
    with pytest.raises(ValueError, match="tile"):
        field_confidences(text + "!", spans, logprobs)
    with pytest.raises(ValueError, match="unknown confidence rule 'max'"):
        field_confidences(text, spans, logprobs, rule="max")


def test_the_default_rule_is_the_joint_probability():
    """Chosen by measurement (scripts/confidence_rules.py); a change of default must change this test."""
    assert DEFAULT_RULE == "product" and RULES[DEFAULT_RULE]([-0.1, -0.2]) == pytest.approx(-0.3)
