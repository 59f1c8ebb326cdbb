"""Ship a model version to a running Triton, or take it back, without dropping requests.

publish: export -> gate -> write version N+1 -> load through the repository API -> smoke-infer N+1
-> keep it, or retire N+1 and reload so N serves again. Triton loads the new version before it
unloads the old one, so requests that name no version keep being answered throughout.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from export.repository import ModelRepository, ModelSource, VersionInfo
from export.specs import SPECS
from univoice_core import served

# Python models that read another model's version files when they load (voice_clone reads the converter's
# preset table): reloaded whenever that model's serving version changes.
READERS: dict[str, tuple[str, ...]] = {served.VOICE_CONVERTER: (served.VOICE_CLONE,)}


class PublishError(RuntimeError):
    """The new version failed on the server; it was retired and the previous version serves again."""


@dataclass(frozen=True)
class ModelState:
    name: str
    version: int
    state: str
    reason: str


def server_states(client: httpclient.InferenceServerClient) -> list[ModelState]:
    return [
        ModelState(m["name"], int(m.get("version") or 0), m.get("state", "UNKNOWN"), m.get("reason", ""))
        for m in client.get_model_repository_index()
        if m.get("version")
    ]


def ready_versions(client: httpclient.InferenceServerClient, name: str) -> list[int]:
    return sorted(s.version for s in server_states(client) if s.name == name and s.state == "READY")


def smoke_infer(client: httpclient.InferenceServerClient, name: str, version: int, inputs: dict) -> dict:
    if SPECS[name].decoupled:
        return _smoke_stream(client, name, version, inputs)
    tensors = []
    for key, array in inputs.items():
        tensor = httpclient.InferInput(key, list(array.shape), np_to_triton_dtype(array.dtype))
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    result = client.infer(name, tensors, model_version=str(version))
    outputs = {o["name"]: result.as_numpy(o["name"]) for o in result.get_response()["outputs"]}
    for key, array in outputs.items():
        if array.size == 0 or not np.isfinite(array).all():
            raise PublishError(f"{name} v{version}: smoke output {key!r} is empty or not finite")
    return outputs


def _smoke_stream(client: httpclient.InferenceServerClient, name: str, version: int, inputs: dict) -> dict:
    """A decoupled model answers a plain infer with an error: ask its HTTP generate_stream endpoint instead and
    join the streamed pieces (server-sent events, one JSON object per response)."""
    url = client._parsed_url  # tritonclient keeps the address it was given only here
    body = json.dumps({key: array.ravel()[0] for key, array in inputs.items()}, default=str).encode()
    request = urllib.request.Request(f"http://{url.host}:{url.port}/v2/models/{name}/versions/{version}/generate_stream",
                                     data=body, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=300) as response:
        events = [json.loads(line[5:]) for line in response.read().decode().splitlines() if line.startswith("data:")]
    errors = [event["error"] for event in events if "error" in event]
    outputs = {key: "".join(str(event.get(key, "")) for event in events) for key in (o.name for o in SPECS[name].outputs)}
    if errors or not all(text.strip() for text in outputs.values()):
        raise PublishError(f"{name} v{version}: smoke request failed or produced nothing: {errors or outputs}")
    return outputs


def publish(repository: ModelRepository, source: ModelSource, client: httpclient.InferenceServerClient,
            progress=None) -> VersionInfo:
    """Build, gate, load and smoke-test a new version. ParityError: nothing written. PublishError: rolled back."""
    previous = repository.latest(source.name)
    new = repository.add_version(source, progress)  # raises before writing anything if the gate refuses
    try:
        client.load_model(source.name)
        if new.version not in ready_versions(client, source.name):
            raise PublishError(f"{source.name} v{new.version} did not become READY")
        smoke_infer(client, source.name, new.version, source.smoke_inputs())
    except (InferenceServerException, PublishError) as error:
        retired = repository.retire(source.name, new.version)
        if previous is not None:
            client.load_model(source.name)
        raise PublishError(
            f"{source.name} v{new.version} failed on the server and was rolled back to v{previous} "
            f"(files kept in {retired}): {error}"
        ) from error
    _reload_readers(client, source.name)
    return new


def rollback(repository: ModelRepository, name: str, client: httpclient.InferenceServerClient) -> int:
    """Retire the newest version and serve the one before it; returns the version now serving."""
    versions = repository.versions(name)
    if len(versions) < 2:
        raise PublishError(f"{name} has {len(versions)} version(s) on disk; nothing to roll back to")
    repository.retire(name, versions[-1])
    client.load_model(name)
    _reload_readers(client, name)
    return versions[-2]


def _reload_readers(client: httpclient.InferenceServerClient, name: str) -> None:
    for reader in READERS.get(name, ()):
        client.load_model(reader)
