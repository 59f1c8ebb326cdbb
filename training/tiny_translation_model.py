"""A tiny CTranslate2 translation model, built here from nothing, to test the MT plumbing without a hub.

It has the layout of an OPUS-MT model converted with `ct2-transformers-converter`: `model.bin`,
`config.json`, `source_vocabulary.json` / `target_vocabulary.json`, and the SentencePiece models
`source.spm` / `target.spm`. Source and target are two made-up "languages" with disjoint alphabets
(a-j and k-t), so a test can tell from the output's letters that it was decoded with `target.spm`.
The weights are random (fixed seed): the output is gibberish in the target alphabet, never a translation.

    python -m training.tiny_translation_model OUTPUT_DIR
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import sentencepiece
from ctranslate2.specs import TransformerSpec, common_spec

SOURCE_ALPHABET = "abcdefghij"
TARGET_ALPHABET = "klmnopqrst"


def corpus(alphabet: str, rng: np.random.Generator, sentences: int = 2000) -> list[str]:
    """Sentences of 3-10 words drawn from a 60-word lexicon over `alphabet`."""
    lexicon = ["".join(rng.choice(list(alphabet), size=rng.integers(2, 7))) for _ in range(60)]
    return [" ".join(rng.choice(lexicon, size=rng.integers(3, 11))) for _ in range(sentences)]


def train_sentencepiece(lines: list[str], vocab_size: int) -> bytes:
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, vocab_size=vocab_size, model_type="unigram",
        character_coverage=1.0, hard_vocab_limit=False, minloglevel=2,
    )
    return model.getvalue()


def pieces(model: bytes) -> list[str]:
    processor = sentencepiece.SentencePieceProcessor(model_proto=model)
    return [processor.id_to_piece(i) for i in range(processor.get_piece_size())]


def _fill_layer_norm(norm: common_spec.LayerNormSpec, d_model: int) -> None:
    norm.gamma = np.ones(d_model, dtype=np.float32)
    norm.beta = np.zeros(d_model, dtype=np.float32)


def _fill_linear(linear: common_spec.LinearSpec, rng: np.random.Generator, out_dim: int, in_dim: int) -> None:
    linear.weight = (rng.standard_normal((out_dim, in_dim)) / np.sqrt(in_dim)).astype(np.float32)
    linear.bias = np.zeros(out_dim, dtype=np.float32)


def _fill_attention(attention, rng: np.random.Generator, d_model: int, self_attention: bool) -> None:
    """Self-attention: fused QKV + output. Encoder-decoder attention: Q, fused KV, output."""
    _fill_layer_norm(attention.layer_norm, d_model)
    shapes = [3 * d_model, d_model] if self_attention else [d_model, 2 * d_model, d_model]
    for linear, out_dim in zip(attention.linear, shapes):
        _fill_linear(linear, rng, out_dim, d_model)


def _fill_ffn(ffn, rng: np.random.Generator, d_model: int, d_ffn: int) -> None:
    _fill_layer_norm(ffn.layer_norm, d_model)
    _fill_linear(ffn.linear_0, rng, d_ffn, d_model)
    _fill_linear(ffn.linear_1, rng, d_model, d_ffn)


def build_tiny_model(output_dir: Path, *, vocab_size: int = 100, d_model: int = 16, d_ffn: int = 32,
                     num_heads: int = 2, seed: int = 0) -> Path:
    """Train two SentencePiece models and write a 1-layer Transformer with random weights around them."""
    rng = np.random.default_rng(seed)
    source_spm = train_sentencepiece(corpus(SOURCE_ALPHABET, rng), vocab_size)
    target_spm = train_sentencepiece(corpus(TARGET_ALPHABET, rng), vocab_size)
    source_vocab, target_vocab = pieces(source_spm), pieces(target_spm)

    spec = TransformerSpec.from_config(num_layers=1, num_heads=num_heads)
    spec.encoder.embeddings[0].weight = rng.standard_normal((len(source_vocab), d_model)).astype(np.float32)
    spec.decoder.embeddings.weight = rng.standard_normal((len(target_vocab), d_model)).astype(np.float32)
    for stack in (spec.encoder, spec.decoder):
        _fill_layer_norm(stack.layer_norm, d_model)  # pre-norm: a final norm after the last layer
        for layer in stack.layer:
            _fill_attention(layer.self_attention, rng, d_model, self_attention=True)
            _fill_ffn(layer.ffn, rng, d_model, d_ffn)
    for layer in spec.decoder.layer:
        _fill_attention(layer.attention, rng, d_model, self_attention=False)
    _fill_linear(spec.decoder.projection, rng, len(target_vocab), d_model)
    spec.register_source_vocabulary(source_vocab)
    spec.register_target_vocabulary(target_vocab)
    spec.validate()

    output_dir.mkdir(parents=True, exist_ok=True)
    spec.save(str(output_dir))
    (output_dir / "source.spm").write_bytes(source_spm)
    (output_dir / "target.spm").write_bytes(target_spm)
    return output_dir


if __name__ == "__main__":  # pragma: no cover
    build_tiny_model(Path(sys.argv[1]))
