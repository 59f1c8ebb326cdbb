"""The gateway's only door to Triton: async gRPC calls, latency metrics, and errors mapped to ours."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence

import grpc
import numpy as np
import tritonclient.grpc.aio as grpcaio
from tritonclient.grpc import MAX_GRPC_MESSAGE_SIZE, InferInput, KeepAliveOptions
from tritonclient.utils import InferenceServerException

from export.llm_backend import END_OF_TEXT
from gateway.observability import TRITON_LATENCY
from univoice_core import kokoro, served
from univoice_core.errors import InvalidAudio, Unavailable, UniVoiceError

# gRPC waits longer and longer between reconnection attempts to a server that is down (up to 2 minutes): a
# gateway would go on answering `triton_unavailable` long after Triton came back. Attempts to a Triton beside the
# gateway are cheap, so they are capped at 2 s.
RECONNECT_BACKOFF_MAX_MS = 2000


def _channel_options() -> list[tuple[str, int]]:
    """tritonclient's own defaults (message sizes, keep-alive) plus the reconnection cap."""
    keepalive = KeepAliveOptions()
    return [
        ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_SIZE),
        ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_SIZE),
        ("grpc.keepalive_time_ms", keepalive.keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", keepalive.keepalive_timeout_ms),
        ("grpc.keepalive_permit_without_calls", keepalive.keepalive_permit_without_calls),
        ("grpc.http2.max_pings_without_data", keepalive.http2_max_pings_without_data),
        ("grpc.initial_reconnect_backoff_ms", 500),
        ("grpc.max_reconnect_backoff_ms", RECONNECT_BACKOFF_MAX_MS),
    ]


class TritonClient:
    def __init__(self, grpc_url: str, timeout_s: float = 30.0):
        self.url = grpc_url
        self.timeout_s = timeout_s
        self._client = grpcaio.InferenceServerClient(grpc_url, channel_args=_channel_options())

    async def embed(self, samples16k: np.ndarray) -> np.ndarray:
        """One 16 kHz mono utterance -> its L2-normalised 256-d speaker embedding."""
        waveform = _tensor("waveform", np.asarray(samples16k, np.float32)[None, :])
        result = await self._infer(served.VOICE_EMBEDDING, [waveform])
        return result.as_numpy("embedding")[0]

    async def synthesize(self, tokens: np.ndarray, style: np.ndarray, speed: float = 1.0) -> np.ndarray:
        """Kokoro: phoneme ids [T] (without the 0 pads) + style row [256] -> 24 kHz float32 waveform."""
        inputs = [_tensor(name, value) for name, value in kokoro.request(tokens, speed, style).items()]
        return (await self._infer(served.SYNTHESIZER, inputs)).as_numpy("audio")

    async def synthesize_cloned(self, tokens: np.ndarray, embedding: np.ndarray, statistics: np.ndarray,
                                speed: float = 1.0) -> np.ndarray:
        """The enrolled speaker's voice: phoneme ids [T] (without the 0 pads) + the profile's embedding [256]
        and voice statistics -> 24 kHz float32 waveform."""
        inputs = [
            *(_tensor(name, value) for name, value in kokoro.request(tokens, speed).items()),
            _tensor("embedding", np.asarray(embedding, dtype=np.float32).reshape(served.EMBEDDING_DIM)),
            _tensor("statistics", np.asarray(statistics, dtype=np.float32).reshape(-1)),
        ]
        return (await self._infer(served.VOICE_CLONE, inputs)).as_numpy("audio")

    async def translate_stream(self, text: str, source_language: str, target_language: str,
                               context: Sequence[str] = (), style: str | None = None) -> AsyncIterator[str]:
        """The `translator`'s pieces of translated text as they are generated (a decoupled model over one gRPC
        stream). `context`: previous [source, translation, ...] utterances. Leaving the loop early (or
        cancelling) closes the stream, and the model stops generating."""
        inputs = [_strings("text", [text]), _strings("source_language", [source_language]),
                  _strings("target_language", [target_language])]
        if context:
            inputs.append(_strings("context", list(context)))
        if style:
            inputs.append(_strings("style", [style]))
        finished = asyncio.Event()

        async def requests():
            yield {"model_name": served.TRANSLATOR, "inputs": inputs}
            await finished.wait()  # keep the stream open until the model has sent its last piece

        started = time.perf_counter()
        outcome = "error"
        responses = self._client.stream_infer(requests(), stream_timeout=self.timeout_s)
        try:
            async for result, error in responses:
                if error is not None:
                    raise _map_error(served.TRANSLATOR, error)
                piece = result.as_numpy("piece").ravel()[0].decode("utf-8")
                if piece == END_OF_TEXT:
                    outcome = "ok"
                    return
                yield piece
        except InferenceServerException as error:
            raise _map_error(served.TRANSLATOR, error) from None
        except (grpc.aio.AioRpcError, grpc.aio.UsageError):  # the stream itself failed: server gone, deadline
            raise Unavailable(f"the inference server is unreachable ({served.TRANSLATOR}); retry shortly",
                              code="triton_unavailable") from None
        finally:
            finished.set()
            if outcome != "ok":
                responses.cancel()
            TRITON_LATENCY.labels(model=served.TRANSLATOR, outcome=outcome).observe(time.perf_counter() - started)

    async def _infer(self, model: str, inputs):
        started = time.perf_counter()
        outcome = "error"
        try:
            result = await self._client.infer(model, inputs, client_timeout=self.timeout_s)
            outcome = "ok"
            return result
        except InferenceServerException as error:
            raise _map_error(model, error) from None
        finally:
            TRITON_LATENCY.labels(model=model, outcome=outcome).observe(time.perf_counter() - started)

    async def model_states(self) -> dict[str, str]:
        """Model name -> state (READY, UNAVAILABLE, ...): READY when any version is (after a rollback the index
        also lists the retired version, UNAVAILABLE)."""
        try:
            index = await self._client.get_model_repository_index(as_json=True)
        except InferenceServerException as error:
            raise _map_error("repository", error) from None
        states: dict[str, str] = {}
        for model in index.get("models", []):
            if model.get("version") and states.get(model["name"]) != "READY":
                states[model["name"]] = model.get("state", "UNKNOWN")
        return states

    async def close(self) -> None:
        await self._client.close()


def _tensor(name: str, value: np.ndarray) -> InferInput:
    datatype = {np.dtype(np.float32): "FP32", np.dtype(np.int64): "INT64", np.dtype(np.object_): "BYTES"}[value.dtype]
    tensor = InferInput(name, list(value.shape), datatype)
    tensor.set_data_from_numpy(np.ascontiguousarray(value))
    return tensor


def _strings(name: str, values: list[str]) -> InferInput:
    return _tensor(name, np.array([v.encode("utf-8") for v in values], dtype=np.object_))


def _map_error(model: str, error: InferenceServerException) -> UniVoiceError:
    status = str(error.status() or "")
    message = error.message() or str(error)
    if "UNAVAILABLE" in status or "DEADLINE" in status or "failed to connect" in message.lower():
        return Unavailable(f"the inference server is unreachable ({model}); retry shortly", code="triton_unavailable")
    if "INVALID_ARG" in status and model == served.VOICE_EMBEDDING:
        return InvalidAudio(f"the audio was refused by the embedding model: {message}", code="invalid_audio")
    return Unavailable(f"inference failed in {model}: {message}", code="inference_failed")
