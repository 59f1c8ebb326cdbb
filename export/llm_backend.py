"""Triton python-backend runner for the `translator`: a GGUF chat model on llama.cpp, streamed piece by piece.

`export` copies this file as ``model.py`` next to ``model.gguf`` into every numbered version, so a
version directory is self-contained: it needs llama-cpp-python, nothing from this project.

The model is decoupled: each request gets one response per generated piece of text (a few tokens)
and then one whose piece is `END_OF_TEXT`, which ends the stream, so the caller can synthesise the
first clause while the rest is still being generated. Requests are served one at a time per instance (a llama.cpp context is not
shared between threads); a request whose caller went away (stream closed, guard rail tripped) stops
generating at the next piece.

The prompt (`messages`) is the translator's design and is tuned on NTREX's tuning part
(`python -m benchmarks.translation`): a fixed instruction per language pair, which llama.cpp keeps in
its KV cache (a RAM cache of states, so each pair's prefix survives requests in other pairs; the
`warm_pairs` are evaluated at load), so only the new turns are evaluated, two short examples
that set the output format, the session's previous utterances as earlier turns (context for pronouns,
gender and terminology, not re-translated), then the text. ``style: "plain"`` is the single-sentence
baseline the benchmark compares against.
"""

from __future__ import annotations

import contextlib
import json
import os

# The last response's piece: ASCII "end of text". (An empty piece would be clearer, but Triton's gRPC stream
# drops a final response whose only string is empty, and the async client cannot ask for its empty final flag.)
END_OF_TEXT = "\x03"
LANGUAGE_NAMES = {"en": "English", "es": "Spanish", "de": "German", "fr": "French"}

# Example turns, aligned across languages: speech-like, and a question and a request among them, so the
# model sees that these are translated, never answered or carried out.
EXAMPLES = {
    "en": ["Could you tell me where the station is?", "Tell me a story about your grandmother.",
           "I think we should leave before it gets dark."],
    "es": ["¿Me puedes decir dónde está la estación?", "Cuéntame una historia sobre tu abuela.",
           "Creo que deberíamos irnos antes de que oscurezca."],
    "de": ["Können Sie mir sagen, wo der Bahnhof ist?", "Erzähl mir eine Geschichte über deine Großmutter.",
           "Ich glaube, wir sollten gehen, bevor es dunkel wird."],
    "fr": ["Pouvez-vous me dire où est la gare ?", "Raconte-moi une histoire sur ta grand-mère.",
           "Je pense que nous devrions partir avant la nuit."],
}


def instruction(source: str, target: str) -> str:
    src, tgt = LANGUAGE_NAMES[source], LANGUAGE_NAMES[target]
    return (
        f"You are a simultaneous interpreter. Each user message holds a transcript of {src} speech; reply with "
        f"its faithful, natural {tgt} translation and nothing else. Translate questions and requests as they "
        "are: never answer them, never comment, never refuse, never add notes. Keep names, numbers and "
        f"meaning; earlier messages are the conversation so far, for context only."
    )


def messages(text: str, source: str, target: str, context: list[tuple[str, str]] = (), style: str = "context") -> list[dict]:
    """The chat for one translation. `context`: the session's previous (source, translation) utterances."""
    if style == "plain":
        return [{"role": "user", "content": f"Translate this {LANGUAGE_NAMES[source]} text into "
                 f"{LANGUAGE_NAMES[target]}:\n{text}"}]
    # Each turn is framed as a task ("Translate into English:"): bare text invites the model to answer it.
    frame = f"Translate into {LANGUAGE_NAMES[target]}:\n"
    chat = [{"role": "system", "content": instruction(source, target)}]
    for said, translated in [*zip(EXAMPLES[source], EXAMPLES[target]), *context]:
        chat += [{"role": "user", "content": frame + said}, {"role": "assistant", "content": translated}]
    return chat + [{"role": "user", "content": frame + text}]


def max_new_tokens(text: str, ceiling: int) -> int:
    """Room for a translation of `text` (~4 characters per token; targets run up to ~1.5x longer) and no more,
    so a model that starts to ramble is cut early."""
    return max(16, min(ceiling, int(len(text) / 2) + 16))


def lower_priority(increment: int) -> None:
    """Raise the niceness of every thread of this process (threads made later inherit it).

    On a CPU host the listener waits for Whisper and for the first clause's synthesis, not for the rest of the
    translation: a niced llama.cpp generates in the CPU time they leave. (Linux niceness is per thread, hence
    each task; raising it needs no privilege.)"""
    if increment <= 0:
        return
    for task in os.listdir("/proc/self/task"):
        with contextlib.suppress(ProcessLookupError):  # a thread that has just ended
            tid = int(task)
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + increment))


class TritonPythonModel:  # pragma: no cover - runs inside Triton; tests drive it through the server
    def initialize(self, args):
        import triton_python_backend_utils as pb_utils
        from llama_cpp import Llama, LlamaRAMCache

        self.pb = pb_utils
        config = json.loads(args["model_config"])
        parameters = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.max_tokens = int(parameters.get("max_tokens", "256"))
        lower_priority(int(parameters.get("nice", "0")))
        path = os.path.join(args["model_repository"], args["model_version"], "model.gguf")
        self.llm = Llama(model_path=path, n_ctx=int(parameters.get("n_ctx", "2048")),
                         n_threads=int(parameters.get("n_threads", "2")), n_batch=256, verbose=False)
        self.llm.set_cache(LlamaRAMCache(capacity_bytes=int(parameters.get("cache_bytes", str(1 << 30)))))
        for pair in filter(None, parameters.get("warm_pairs", "").split(",")):
            source, target = pair.split("-")
            self.llm.create_chat_completion(messages=messages("OK.", source, target), max_tokens=1, temperature=0.0)

    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            try:
                self._generate(request, sender)
            except Exception as error:  # the caller gets the reason; the model stays up for the next request
                sender.send(self.pb.InferenceResponse(error=self.pb.TritonError(f"translator failed: {error}")),
                            flags=self.pb.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
                continue
            sender.send(self.pb.InferenceResponse(output_tensors=[self.pb.Tensor("piece", _bytes([END_OF_TEXT]))]),
                        flags=self.pb.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None

    def _generate(self, request, sender) -> None:
        text = self._string(request, "text")
        source, target = self._string(request, "source_language"), self._string(request, "target_language")
        for code in (source, target):
            if code not in LANGUAGE_NAMES:
                raise ValueError(f"unknown language {code!r}; the translator knows {', '.join(sorted(LANGUAGE_NAMES))}")
        flat = self._strings(request, "context")
        context = list(zip(flat[0::2], flat[1::2]))[-2:]
        style = (self._strings(request, "style") or ["context"])[0]
        stream = self.llm.create_chat_completion(
            messages=messages(text, source, target, context, style), temperature=0.0, stream=True,
            max_tokens=max_new_tokens(text, self.max_tokens))
        for chunk in stream:
            if request.is_cancelled():
                stream.close()
                return
            piece = chunk["choices"][0]["delta"].get("content")
            if piece:
                sender.send(self.pb.InferenceResponse(output_tensors=[
                    self.pb.Tensor("piece", _bytes([piece]))]))

    def _strings(self, request, name: str) -> list[str]:
        tensor = self.pb.get_input_tensor_by_name(request, name)
        if tensor is None:
            return []
        return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in tensor.as_numpy().ravel()]

    def _string(self, request, name: str) -> str:
        values = self._strings(request, name)
        if len(values) != 1:
            raise ValueError(f"{name} must hold exactly one string")
        return values[0]


def _bytes(values):
    import numpy as np

    return np.array([v.encode("utf-8") for v in values], dtype=np.object_)
