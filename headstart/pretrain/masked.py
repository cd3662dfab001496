"""`masked`: masked language modelling (BERT's objective) for text backbones.

Two uses:
- continued, domain-adaptive pretraining of an existing `hf:` / `st:` encoder on in-domain text
  (`--backbone st:all-MiniLM-L6-v2`): an MLM head (its decoder tied to the input embeddings) is put on the encoder,
  trained alone for `head_steps` steps (a new head's random gradients would otherwise shake the pretrained
  weights), then together with the encoder;
- a small BERT from scratch (no `--backbone`): a WordPiece tokenizer is trained on the corpus first, then a
  `layers` x `hidden` BERT; its config and tokenizer are saved in the run folder (`hf-architecture/`), which the
  saved backbone refers to as `hf:./hf-architecture`.

Texts are tokenised once and cut into windows of `max_length` tokens (long articles give several examples; no
text is truncated away). 15% of tokens are chosen; of those 80% become [MASK], 10% a random token, 10% stay
(Devlin et al. 2019). Masks come from the epoch's seeded generator, so a resumed run masks exactly as an
uninterrupted one. The learning rate warms up linearly over the first 6% of steps and decays linearly to zero.
Only the encoder is kept: the saved backbone is the `--backbone` architecture with the adapted weights.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from headstart.backbones.base import Backbone, TextBackbone
from headstart.pretrain.common import Pretrained, PretrainError, PretrainJob, architecture_of

MODALITIES = ("text",)
OPTIONS: dict[str, Any] = {
    "mask_prob": 0.15,
    "max_length": 128,  # tokens per training window
    "max_windows": 0,  # at most this many windows per epoch (0: all), for quick runs
    "head_steps": 100,  # continued pretraining: steps that train the new MLM head alone
    "head_lr_mult": 10.0,  # continued pretraining: the new head learns at lr x this
    "warmup": 0.06,  # fraction of all steps spent warming up the learning rate
    "weight_decay": 0.01,
    # from scratch only
    "vocab_size": 8000,
    "layers": 4,
    "hidden": 256,
    "heads": 4,
}
DEFAULTS = {"epochs": 2, "batch_size": 16, "lr": 5e-5}
ARCH_DIR = "hf-architecture"


def train(job: PretrainJob) -> Pretrained:
    o = job.options
    texts = [str(t) for t in job.data.items]
    if job.backbone is None:
        backbone, architecture, tokenizer = _scratch(job, texts)
        notes = [f"BERT from scratch: {o['layers']} layers, {o['hidden']}-d, WordPiece vocabulary of {o['vocab_size']}"]
        head_steps = 0
        head_lr = job.settings.lr
    else:
        backbone, architecture, tokenizer = _continued(job)
        notes = [f"continued masked-LM pretraining of {job.backbone}"]
        head_steps = int(o["head_steps"])
        head_lr = job.settings.lr * float(o["head_lr_mult"])
    mlm, encoder_params = _mlm_model(backbone)
    windows = _windows(texts, tokenizer, int(o["max_length"]))
    if not windows:
        raise PretrainError(f"{job.data.source}: no text to pretrain on (every item is empty after tokenising)")
    s = job.settings
    per_epoch = len(windows) if not o["max_windows"] else min(len(windows), int(o["max_windows"]))
    if per_epoch < s.batch_size:
        raise PretrainError(
            f"{job.data.source}: {per_epoch} training windows of {o['max_length']} tokens, fewer than one batch "
            f"({s.batch_size}); use a smaller batch_size"
        )
    notes.append(f"{len(texts)} texts -> {len(windows)} windows of up to {o['max_length']} tokens")

    encoder_ids = {id(p) for p in encoder_params}
    head_weights = [p for p in mlm.parameters() if id(p) not in encoder_ids]
    optimizer = torch.optim.AdamW(
        [{"params": encoder_params, "name": "encoder"}, {"params": head_weights, "name": "head"}],
        lr=s.lr,
        weight_decay=float(o["weight_decay"]),
    )
    model, optimizer = job.fabric.setup(_MaskedLoss(mlm), optimizer)
    steps_per_epoch = per_epoch // s.batch_size
    schedule = _Schedule(s.lr, head_lr, steps_per_epoch * s.epochs, float(o["warmup"]), head_steps)
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)), device=job.fabric.device)
    mask_id, vocab = int(tokenizer.mask_token_id), int(len(tokenizer))
    pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)

    for epoch in job.loop({"mlm": mlm}, {"opt": optimizer}):
        model.train()
        batches = epoch.batches(len(windows), on_device=False)[:steps_per_epoch]
        for i, idx in enumerate(epoch.track(batches)):
            step = epoch.index * steps_per_epoch + i
            for group in optimizer.param_groups:
                group["lr"] = schedule.lr(step, group.get("name", "encoder"))
            ids, attention = _pad([windows[j] for j in idx.tolist()], pad_id, job.fabric.device)
            inputs, labels = _mask(ids, attention, special, mask_id, vocab, float(o["mask_prob"]), epoch.generator)
            batch_loss = model(inputs, attention, labels)
            optimizer.zero_grad(set_to_none=True)
            job.fabric.backward(batch_loss)
            # a non-finite loss is caught once per epoch (Epoch.summary), not by a wait for the GPU every step
            job.fabric.clip_gradients(model, optimizer, max_norm=1.0, error_if_nonfinite=False)
            optimizer.step()
            loss = batch_loss.detach()
            epoch.log(loss, len(idx), perplexity=torch.exp(loss.float().clamp(max=50.0)))
    backbone.module.eval()
    return Pretrained(backbone, architecture=architecture, history=job.history, notes=notes)


class _MaskedLoss(torch.nn.Module):
    """The masked-LM loss, with the vocabulary head run on the masked positions alone (about 15% of the tokens:
    the (tokens x vocabulary) logits are the largest tensor of a step) for BERT- and RoBERTa-style heads."""

    def __init__(self, mlm: torch.nn.Module) -> None:
        super().__init__()
        self.mlm = mlm
        self.head = getattr(mlm, "cls", None) or getattr(mlm, "lm_head", None)

    def forward(self, inputs: torch.Tensor, attention: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.head is None:
            return self.mlm(input_ids=inputs, attention_mask=attention, labels=labels).loss
        encoder = getattr(self.mlm, self.mlm.base_model_prefix)
        hidden = encoder(input_ids=inputs, attention_mask=attention).last_hidden_state
        chosen = labels != -100
        logits = self.head(hidden[chosen])
        return torch.nn.functional.cross_entropy(logits.float(), labels[chosen])


class _Schedule:
    """Linear warm-up then linear decay to zero, the head at its own peak rate; during the first `head_steps`
    steps the encoder does not train."""

    def __init__(self, lr: float, head_lr: float, total: int, warmup: float, head_steps: int) -> None:
        self.top = {"encoder": lr, "head": head_lr}
        self.total, self.head_steps = max(total, 1), min(head_steps, max(total - 1, 0))
        self.warm = max(1, int(round(warmup * self.total)))

    def lr(self, step: int, group: str) -> float:
        if group == "encoder" and step < self.head_steps:
            return 0.0
        rise = min(1.0, (step + 1) / self.warm)
        return self.top[group] * rise * max(0.0, (self.total - step) / max(self.total - self.warm, 1))


def _continued(job: PretrainJob) -> tuple[TextBackbone, str, Any]:
    from headstart.backbones import create_backbone

    assert job.backbone is not None
    backbone = create_backbone(job.backbone)
    if not isinstance(backbone, TextBackbone):
        raise PretrainError(f"masked pretraining needs a text backbone; {job.backbone} is a {backbone.modality} one")
    tokenizer = tokenizer_of(backbone)
    if tokenizer is None or tokenizer.mask_token_id is None:
        raise PretrainError(
            f"{job.backbone}: its tokenizer has no [MASK] token, so it cannot be trained as a masked LM"
        )
    architecture = architecture_of(job.backbone)
    if architecture.startswith(f"hf:./{ARCH_DIR}"):  # continuing a from-scratch run: take its config and tokenizer
        source = Path(job.backbone.removeprefix("local:").split("?", 1)[0]).expanduser() / ARCH_DIR
        if job.rank == 0:
            shutil.copytree(source, job.out.parent / ARCH_DIR, dirs_exist_ok=True)
    return backbone, architecture, tokenizer


def _scratch(job: PretrainJob, texts: list[str]) -> tuple[TextBackbone, str, Any]:
    import transformers
    from tokenizers import BertWordPieceTokenizer

    from headstart.backbones import create_backbone

    o = job.options
    folder = job.out.parent / ARCH_DIR
    if job.rank == 0:
        wordpiece = BertWordPieceTokenizer(lowercase=True)
        wordpiece.train_from_iterator(texts, vocab_size=int(o["vocab_size"]), min_frequency=2, show_progress=False)
        tokenizer = transformers.BertTokenizerFast(tokenizer_object=wordpiece._tokenizer, do_lower_case=True)
        tokenizer.add_special_tokens(
            {
                "pad_token": "[PAD]",
                "unk_token": "[UNK]",
                "cls_token": "[CLS]",
                "sep_token": "[SEP]",
                "mask_token": "[MASK]",
            }
        )
        hidden = int(o["hidden"])
        config = transformers.BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=hidden,
            num_hidden_layers=int(o["layers"]),
            num_attention_heads=int(o["heads"]),
            intermediate_size=4 * hidden,
            max_position_embeddings=max(512, int(o["max_length"])),
            pad_token_id=tokenizer.pad_token_id,
        )
        folder.mkdir(parents=True, exist_ok=True)
        config.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    if job.fabric.world_size > 1:
        job.fabric.barrier()
    torch.manual_seed(job.settings.seed)
    backbone = create_backbone(f"hf:{folder}?init=random&max_length={int(o['max_length'])}")
    assert isinstance(backbone, TextBackbone)
    return backbone, f"hf:./{ARCH_DIR}?max_length={int(o['max_length'])}", tokenizer_of(backbone)


def tokenizer_of(backbone: Backbone) -> Any:
    """The Hugging Face tokenizer behind a text backbone (None for a backbone without one)."""
    return getattr(backbone, "tokenizer", None)


def _mlm_model(backbone: TextBackbone) -> tuple[torch.nn.Module, list[torch.nn.Parameter]]:
    """A masked-LM model whose encoder IS the backbone's transformer (shared modules, so training adapts the
    backbone in place); the head's decoder is tied to the input embeddings."""
    import transformers

    encoder = next((m for m in backbone.module.modules() if isinstance(m, transformers.PreTrainedModel)), None)
    if encoder is None:
        raise PretrainError(f"{backbone.spec}: no transformers model inside, so no masked-LM head can be attached")
    try:
        torch.manual_seed(0)
        mlm = transformers.AutoModelForMaskedLM.from_config(encoder.config)
    except ValueError:
        raise PretrainError(
            f"{backbone.spec}: transformers has no masked-LM head for {type(encoder).__name__}"
        ) from None
    prefix = mlm.base_model_prefix
    if not isinstance(getattr(mlm, prefix, None), torch.nn.Module):
        raise PretrainError(f"{backbone.spec}: cannot attach a masked-LM head to {type(encoder).__name__}")
    setattr(mlm, prefix, encoder)
    mlm.tie_weights()
    return mlm, list(encoder.parameters())


def _windows(texts: list[str], tokenizer: Any, max_length: int) -> list[list[int]]:
    """Each text's tokens cut into windows of `max_length` (with [CLS] ... [SEP]); windows under 8 tokens dropped."""
    body = max_length - 2
    encoded = tokenizer(texts, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    windows = []
    for ids in encoded:
        for start in range(0, len(ids), body):
            piece = ids[start : start + body]
            if len(piece) >= 8 or (start == 0 and piece):
                windows.append([cls, *piece, sep])
    return windows


def _pad(rows: list[list[int]], pad_id: int, device: Any) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        attention[i, : len(r)] = 1
    return ids.to(device), attention.to(device)


def _mask(
    ids: torch.Tensor,
    attention: torch.Tensor,
    special: torch.Tensor,
    mask_id: int,
    vocab: int,
    prob: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: choose `prob` of the real tokens; 80% -> [MASK], 10% -> a random token, 10% unchanged."""
    candidates = attention.bool() & ~torch.isin(ids, special)
    chance = torch.rand(ids.shape, generator=generator, device=ids.device)
    chosen = candidates & (chance < prob)
    if not chosen.any():  # at least one target per batch
        first = candidates.nonzero()[:1]
        chosen[first[:, 0], first[:, 1]] = True
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    how = torch.rand(ids.shape, generator=generator, device=ids.device)
    inputs = torch.where(chosen & (how < 0.8), torch.full_like(ids, mask_id), ids)
    random_tokens = torch.randint(vocab, ids.shape, generator=generator, device=ids.device)
    inputs = torch.where(chosen & (how >= 0.8) & (how < 0.9), random_tokens, inputs)
    return inputs, labels
