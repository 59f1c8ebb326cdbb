"""Translation quality and speed per engine and pair, on the held-out part of NTREX-128.

NTREX-128 (English news with professional Spanish, German and French references; CC BY-SA 4.0,
Federmann et al. 2022) is split once: lines whose index is a multiple of 4 are held out (`HELD_OUT`),
the rest were the tuning part the prompt was designed on. Each engine translates the held-out lines
in document order, the way a session does, with the previous one or two lines (source, its own
translation) as context (`ConversationContext`):

* `llm`: the final translator, Triton's `translator` with the session prompt, the guard rails and
  the Apertium fallback (en<->es), exactly what a session uses (`GuardedTranslator`);
* `llm-plain`: the same model with a plain single-sentence prompt, no context, no guard;
* `apertium`: Debian's rule-based en<->es.

    python -m benchmarks.translation [--sentences 60] [--pairs en-es,es-en,en-de,en-fr]

Prints a table and writes benchmarks/results/<date>/translation.{json,png}: one row per engine and pair
with `engine`, `pair`, `chrf`, `bleu` (sacrebleu), `s_per_sentence`, `tokens_per_s` (LLM: pieces per
second while generating), `fallbacks` (how often the guard handed a sentence to Apertium), `rejected`
(refused where the pair has no fallback: scored as an empty translation).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import sacrebleu
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from gateway.embedded import private_triton
from gateway.pipeline.guard import TranslationGuard
from gateway.pipeline.translate import ConversationContext, GuardedTranslator, LlmTranslator, apertium, engine_supports
from gateway.settings import get_settings
from gateway.triton.client import TritonClient
from univoice_core.errors import Unavailable

RESULTS = Path(__file__).resolve().parent / "results"
NTREX = get_settings().data_dir.parent / "ntrex128"
FILES = {"en": "newstest2019-src.eng.txt", "es": "newstest2019-ref.spa.txt", "de": "newstest2019-ref.deu.txt",
         "fr": "newstest2019-ref.fra.txt"}
DEFAULT_PAIRS = ("en-es", "es-en", "en-de", "en-fr")


def lines(language: str) -> list[str]:
    return (NTREX / FILES[language]).read_text(encoding="utf-8").splitlines()


def held_out(count: int) -> list[int]:
    """The held-out line indices (every 4th line; the others are the tuning part), the first `count` of them.
    Consecutive held-out lines are 4 apart: close enough to share a document, as a conversation does."""
    return [i for i in range(len(lines("en"))) if i % 4 == 0][:count]


async def run_engine(name: str, translator, pair: str, indices: list[int], context_size: int) -> dict:
    source, target = pair.split("-")
    sources, references = lines(source), lines(target)
    hypotheses, seconds, first_piece, pieces_per_s, fallbacks, rejected = [], [], [], [], 0, 0
    context = ConversationContext(context_size)
    for index in tqdm(indices, desc=f"{name} {pair}", leave=False):
        started = time.perf_counter()
        first = None
        out, count = "", 0
        try:
            async for piece in translator.stream(sources[index], source, target, context()):
                first = first or time.perf_counter()
                if piece.fallback_reason:
                    fallbacks += 1
                    out = ""
                out += piece.text
                count += 1
        except Unavailable as error:  # refused with no fallback engine: the listener hears nothing
            if error.code != "translation_rejected":
                raise
            rejected, out = rejected + 1, ""
        done = time.perf_counter()
        seconds.append(done - started)
        first_piece.append((first or done) - started)
        if first and count > 1 and done > first:
            pieces_per_s.append((count - 1) / (done - first))
        hypotheses.append(" ".join(out.split()))
        context.add(sources[index], hypotheses[-1])
    refs = [references[i] for i in indices]
    return {
        "pair": pair,
        "sentences": len(indices),
        "chrf": round(sacrebleu.corpus_chrf(hypotheses, [refs]).score, 2),
        "bleu": round(sacrebleu.corpus_bleu(hypotheses, [refs]).score, 2),
        "s_per_sentence": round(sum(seconds) / len(seconds), 3),
        "first_piece_s": round(sum(first_piece) / len(first_piece), 3),
        "tokens_per_s": round(sum(pieces_per_s) / len(pieces_per_s), 1) if pieces_per_s else None,
        "fallbacks": fallbacks,
        "rejected": rejected,
        "examples": [{"source": sources[i], "reference": references[i], "hypothesis": h}
                     for i, h in list(zip(indices, hypotheses))[:3]],
    }


async def measure(grpc_url: str, pairs: list[str], count: int) -> list[dict]:
    triton = TritonClient(grpc_url, timeout_s=300)
    guard = TranslationGuard()
    indices = held_out(count)
    rows = []
    try:
        for pair in pairs:
            fallback = apertium(pair) if engine_supports("apertium", pair) else None
            engines = [("llm", GuardedTranslator(LlmTranslator(triton), fallback, guard), 2),
                       ("llm-plain", LlmTranslator(triton, style="plain"), 0)]
            if fallback is not None:
                engines.append(("apertium", fallback, 0))
            for name, translator, context_size in engines:
                row = await run_engine(name, translator, pair, indices, context_size)
                rows.append({"engine": name, **row})
                Console().print(f"{name:10s} {pair}: chrF {row['chrf']:.1f}  BLEU {row['bleu']:.1f}  "
                                f"{row['s_per_sentence']:.2f} s/sentence")
    finally:
        await triton.close()
    return rows


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    pairs = list(dict.fromkeys(r["pair"] for r in rows))
    engines = ["llm", "llm-plain", "apertium"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    width = 0.27
    for offset, engine in enumerate(engines):
        values = [next((r for r in rows if r["engine"] == engine and r["pair"] == p), None) for p in pairs]
        x = np.arange(len(pairs)) + (offset - 1) * width
        axes[0].bar(x, [v["chrf"] if v else 0 for v in values], width, label=engine)
        axes[1].bar(x, [v["s_per_sentence"] if v else 0 for v in values], width, label=engine)
    for ax, label in zip(axes, ["chrF (held-out NTREX)", "seconds per sentence"]):
        ax.set_xticks(np.arange(len(pairs)), pairs)
        ax.set_ylabel(label)
    axes[0].legend()
    axes[0].set_title("Translation quality")
    axes[1].set_title("Translation time (2-core CPU)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=60, help="held-out sentences per pair")
    parser.add_argument("--pairs", default=",".join(DEFAULT_PAIRS))
    parser.add_argument("--out", type=Path, default=RESULTS / time.strftime("%Y-%m-%d"))
    args = parser.parse_args(argv)
    pairs = [p.strip() for p in args.pairs.split(",") if p.strip()]
    with private_triton(get_settings().model_repository, ["translator"]) as server:
        rows = asyncio.run(measure(server.grpc_url, pairs, args.sentences))
    table = Table("engine", "pair", "chrF", "BLEU", "s/sentence", "first piece s", "tokens/s", "fallbacks",
                  title=f"Held-out NTREX-128, {args.sentences} sentences per pair")
    for r in rows:
        table.add_row(r["engine"], r["pair"], f"{r['chrf']:.1f}", f"{r['bleu']:.1f}", f"{r['s_per_sentence']:.2f}",
                      f"{r['first_piece_s']:.2f}", f"{r['tokens_per_s']}" if r["tokens_per_s"] else "-",
                      f"{r['fallbacks']} / {r['rejected']} rejected")
    Console().print(table)
    result = {"benchmark": "translation", "data": "NTREX-128 held-out (every 4th line)", "sentences": args.sentences,
              "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "translation.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    plot(rows, args.out / "translation.png")
    Console().print(f"saved {args.out / 'translation.json'} and .png")
    return result


if __name__ == "__main__":
    main()
