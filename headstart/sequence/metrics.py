"""Scores of generated text against references, one function per task, each a dict of numbers (higher is better
except the error rates).

- transcribe: word and character error rates (jiwer), on lower-cased text with punctuation removed and spaces
  collapsed, so "Hello, world." matches "hello world";
- seq2seq: chrF and BLEU on the corpus (sacrebleu, its default settings, 0..100), ROUGE-1/2/L F-measures
  (rouge-score, stemmed, averaged over pairs, scaled to 0..100).

`PRIMARY` names the metric each task keeps its best epoch by, and whether higher is better.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

PRIMARY: dict[str, tuple[str, bool]] = {"transcribe": ("wer", False), "seq2seq": ("chrf", True)}


def score(task: str, predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """The metrics of `task` (see the module's docstring)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not references:
        raise ValueError("no references to score against")
    return (
        transcription_scores(predictions, references) if task == "transcribe" else text_scores(predictions, references)
    )


def normalize(text: str) -> str:
    """Lower case, punctuation removed (apostrophes inside words kept), spaces collapsed."""
    text = re.sub(r"[^\w\s']|(?<!\w)'|'(?!\w)", " ", text.lower())
    return " ".join(text.split())


def transcription_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """WER and CER over the whole set (errors summed over pairs, divided by the reference length)."""
    import jiwer

    refs = [normalize(r) for r in references]
    hyps = [normalize(p) for p in predictions]
    keep = [i for i, r in enumerate(refs) if r]  # jiwer refuses empty references
    refs, hyps = [refs[i] for i in keep], [hyps[i] for i in keep]
    if not refs:
        raise ValueError("every reference is empty after normalisation")
    return {"wer": round(float(jiwer.wer(refs, hyps)), 4), "cer": round(float(jiwer.cer(refs, hyps)), 4)}


def text_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """chrF and BLEU (sacrebleu, corpus level) and mean ROUGE-1/2/L F-measures, all on 0..100."""
    import sacrebleu
    from rouge_score import rouge_scorer

    hyps, refs = list(predictions), list(references)
    out = {
        "chrf": round(sacrebleu.corpus_chrf(hyps, [refs]).score, 2),
        "bleu": round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2),
    }
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    sums = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for hyp, ref in zip(hyps, refs, strict=True):
        for name, s in scorer.score(ref, hyp).items():
            sums[name] += s.fmeasure
    out.update({name: round(100 * total / len(refs), 2) for name, total in sums.items()})
    return out
