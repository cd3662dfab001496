"""Sequence metrics: WER/CER through jiwer on normalised text, chrF/BLEU (sacrebleu) and ROUGE (rouge-score)."""

from __future__ import annotations

import pytest

from headstart.sequence.metrics import PRIMARY, normalize, score


def test_transcription_ignores_case_and_punctuation() -> None:
    out = score("transcribe", ["Hello, world.", "it's fine"], ["hello world", "It's fine!"])
    assert out == {"wer": 0.0, "cer": 0.0}


def test_transcription_counts_word_errors() -> None:
    out = score("transcribe", ["the cat sat", "a dog"], ["the cat sat down", "the dog"])
    assert out["wer"] == pytest.approx(2 / 6, abs=1e-4)  # one deletion, one substitution over six words
    assert out["cer"] == pytest.approx(8 / 23, abs=1e-4)  # " down" deleted, "the" -> "a": 8 edits, 23 chars


def test_text_scores_rank_a_closer_output_higher() -> None:
    refs = ["shares in the bank fell sharply today", "the team won the cup final"]
    close = score("seq2seq", ["shares in the bank fell today", "the team won the final"], refs)
    far = score("seq2seq", ["music award for a film star", "phone users online"], refs)
    exact = score("seq2seq", refs, refs)
    assert set(close) == {"chrf", "bleu", "rouge1", "rouge2", "rougeL"}
    assert exact["chrf"] == exact["rougeL"] == exact["bleu"] == 100.0
    for name in close:
        assert far[name] < close[name] < 100.0


def test_primary_metrics_and_bad_input() -> None:
    assert PRIMARY == {"transcribe": ("wer", False), "seq2seq": ("chrf", True)}
    assert normalize("  Don't STOP -- 'now'  ") == "don't stop now"
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        score("seq2seq", ["a", "b"], ["a"])
