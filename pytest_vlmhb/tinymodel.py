"""Build the built-in tiny model ``builtin:tiny-idefics3`` offline.

A randomly initialised but real Idefics3 (SmolVLM architecture): a 2-layer
SigLIP-style vision tower, a 2-layer Llama text model with head_dim 64 (vLLM's
CPU attention rejects smaller heads), a byte-level BPE tokenizer trained on a
fixed built-in corpus, the SmolVLM chat template and an Idefics3 processor.
Every build is seeded and gives byte-identical files. Its answers are noise:
it exists to test plumbing, latency and backend parity, not accuracy.

Runs inside a backend virtualenv (torch, transformers, tokenizers); imports
nothing else of ``pytest_vlmhb``. Usage: ``python -m pytest_vlmhb.tinymodel OUT_DIR``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

#: Cache-key salt: bump whenever the built files would change.
TINY_MODEL_VERSION = "1"

SEED = 1234
MARKER = ".complete"
VOCAB_SIZE = 512
IMAGE_SIZE = 56
PATCH_SIZE = 14
SCALE_FACTOR = 2
IMAGE_SEQ_LEN = (IMAGE_SIZE // PATCH_SIZE) ** 2 // SCALE_FACTOR**2  # 4

UNK, BOS, PAD = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
FAKE_IMAGE, IMAGE, EOU, GLOBAL_IMAGE = (
    "<fake_token_around_image>",
    "<image>",
    "<end_of_utterance>",
    "<global-img>",
)
ROW_COL = [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
SPECIAL_TOKENS = [UNK, BOS, PAD, FAKE_IMAGE, IMAGE, EOU, GLOBAL_IMAGE, *ROW_COL]

# SmolVLM's template, plus a branch for plain-string content.
CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'] is string %}{{ ': ' + message['content'] }}"
    "{% else %}{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}"
    "{% endif %}{% for line in message['content'] %}{% if line['type'] == 'text' %}"
    "{{ line['text'] }}{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

CORPUS = [
    "Invoice number 4711, dated 2024-03-15, total due: 1,250.00 EUR.",
    "What is the total amount on this receipt? The total is $42.17.",
    "Question: Which year had the highest revenue? Answer: 2021.",
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Name: Jane Doe; Address: 12 Main Street, Springfield; Phone: 555-0100.",
    "Chart: sales by quarter. Q1 120, Q2 135, Q3 150, Q4 171 (thousands).",
    "Document type: letter, memo, form, email, report, scientific paper.",
    "OCR output: Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
    "Résumé, naïve café, Straße, Ærøskøbing, 東京, Ελληνικά, русский текст.",
    "User: Describe the image.<end_of_utterance>\nAssistant: A scanned page.",
    "0123456789 +-*/=%()[]{}<>.,;:!?'\"@#&_|~^`\\ \t tabs and  spaces",
    "Key information extraction: company, date, address, total, tax, vendor.",
]


def log(message: str) -> None:
    """Print a short progress line to stderr."""
    print(f"[tinymodel] {message}", file=sys.stderr, flush=True)


def train_tokenizer() -> Any:
    """Train a byte-level BPE tokenizer on the fixed corpus (deterministic)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=1,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 4, trainer=trainer, length=len(CORPUS) * 4)
    return tok


def make_processor(tok: Any) -> Any:
    """Wrap the tokenizer, image processor and chat template into a processor."""
    from transformers import Idefics3Processor, PreTrainedTokenizerFast
    from transformers.models.idefics3.image_processing_pil_idefics3 import (
        Idefics3ImageProcessorPil,
    )

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOU,
        pad_token=PAD,
        unk_token=UNK,
        extra_special_tokens=[FAKE_IMAGE, IMAGE, EOU, GLOBAL_IMAGE, *ROW_COL],
        model_max_length=2048,
        padding_side="left",
        chat_template=CHAT_TEMPLATE,
    )
    image_processor = Idefics3ImageProcessorPil(
        size={"longest_edge": 2 * IMAGE_SIZE},
        max_image_size={"longest_edge": IMAGE_SIZE},
        do_image_splitting=True,
    )
    return Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=IMAGE_SEQ_LEN,
        chat_template=CHAT_TEMPLATE,
    )


def make_model(tokenizer: Any) -> Any:
    """Create the randomly initialised Idefics3 model (seeded)."""
    import torch
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, LlamaConfig
    from transformers.models.idefics3.configuration_idefics3 import Idefics3VisionConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in (BOS, PAD, EOU, IMAGE)}
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=192,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,
        max_position_embeddings=2048,
        rms_norm_eps=1e-5,
        bos_token_id=ids[BOS],
        eos_token_id=ids[EOU],
        pad_token_id=ids[PAD],
        tie_word_embeddings=False,
    )
    vision = Idefics3VisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
    )
    config = Idefics3Config(
        text_config=text.to_dict(),
        vision_config=vision.to_dict(),
        image_token_id=ids[IMAGE],
        scale_factor=SCALE_FACTOR,
        pad_token_id=ids[PAD],
        bos_token_id=ids[BOS],
        eos_token_id=ids[EOU],
        tie_word_embeddings=False,
    )
    torch.manual_seed(SEED)
    model = Idefics3ForConditionalGeneration(config).eval()
    model.generation_config.bos_token_id = ids[BOS]
    model.generation_config.eos_token_id = ids[EOU]
    model.generation_config.pad_token_id = ids[PAD]
    return model


def _normalise_files(directory: Path) -> None:
    """Sort JSON keys (byte-identical builds), fix modes, expose ``pad_token_id``.

    transformers 5.23 saves Idefics3's top-level pad id as ``_pad_token_id``;
    older 5.x releases (the one vLLM 0.32 pins) only read ``pad_token_id`` and
    would otherwise fall back to 128002, outside this vocabulary.
    """
    for path in sorted(directory.iterdir()):
        path.chmod(0o644)
        if path.suffix != ".json":
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        if path.name == "config.json" and "_pad_token_id" in data:
            data["pad_token_id"] = data.pop("_pad_token_id")
        path.write_text(
            json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
            encoding="utf-8",
        )


def _publish(tmp: Path, out_dir: Path) -> None:
    """Rename the finished build into place; a concurrent complete build wins."""
    for _ in range(3):
        try:
            os.rename(tmp, out_dir)
            return
        except OSError:
            if (out_dir / MARKER).exists():  # another process finished first: same bytes
                return
            # An incomplete leftover (builds only ever rename complete dirs): move it aside.
            aside = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.stale.", dir=out_dir.parent))
            with contextlib.suppress(OSError):
                os.rename(out_dir, aside / "old")
            shutil.rmtree(aside, ignore_errors=True)
    os.rename(tmp, out_dir)


def build_tiny_idefics3(out_dir: Path) -> Path:
    """Build the tiny model into ``out_dir`` atomically; reuse a complete one."""
    out_dir = Path(out_dir)
    if (out_dir / MARKER).exists():
        log(f"reusing {out_dir}")
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        log("training tokenizer")
        processor = make_processor(train_tokenizer())
        log(f"creating model (vocab {len(processor.tokenizer)})")
        model = make_model(processor.tokenizer)
        log(f"saving {sum(p.numel() for p in model.parameters())} parameters")
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        _normalise_files(tmp)
        (tmp / MARKER).write_text(TINY_MODEL_VERSION + "\n", encoding="utf-8")
        os.chmod(tmp, 0o755)
        _publish(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"built {out_dir}")
    return out_dir


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m pytest_vlmhb.tinymodel OUT_DIR``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m pytest_vlmhb.tinymodel OUT_DIR", file=sys.stderr)
        return 2
    build_tiny_idefics3(Path(args[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
