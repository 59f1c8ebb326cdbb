"""Triton python-backend runner for one ONNX model (the bundled CPU Triton has no onnxruntime backend).

`export` copies this file as ``model.py`` next to ``model.onnx`` into every numbered version, so a
version directory is self-contained: it needs numpy and onnxruntime, nothing from this project.
Requests that arrive together (dynamic batching) and share a shape are run as one onnxruntime call.
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.batched = config.get("max_batch_size", 0) > 0
        self.input_names = [t["name"] for t in config["input"]]
        self.output_names = [t["name"] for t in config["output"]]
        threads = int(config.get("parameters", {}).get("intra_op_threads", {}).get("string_value", "1"))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Threads that spin while waiting burn the cores the other models and the server need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        self.session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
        graph_inputs = {i.name for i in self.session.get_inputs()}
        graph_outputs = {o.name for o in self.session.get_outputs()}
        if graph_inputs != set(self.input_names) or not set(self.output_names) <= graph_outputs:
            raise pb_utils.TritonModelException(
                f"{args['model_name']} v{args['model_version']}: model.onnx has inputs {sorted(graph_inputs)} and "
                f"outputs {sorted(graph_outputs)}, but config.pbtxt declares inputs {self.input_names} and "
                f"outputs {self.output_names}; re-export the model or fix its spec in export/specs.py"
            )

    def execute(self, requests):
        responses = [None] * len(requests)
        groups = {}
        for index, request in enumerate(requests):
            arrays = [pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in self.input_names]
            problem = _validate(arrays, self.input_names)
            if problem:
                responses[index] = pb_utils.InferenceResponse(error=pb_utils.TritonError(problem))
                continue
            key = tuple(a.shape[1:] for a in arrays) if self.batched else index
            groups.setdefault(key, []).append((index, arrays))
        for members in groups.values():
            try:
                if self.batched:
                    feed = {name: np.concatenate([m[1][i] for m in members]) for i, name in enumerate(self.input_names)}
                else:
                    feed = dict(zip(self.input_names, members[0][1]))
                outputs = self.session.run(self.output_names, feed)
            except Exception as error:  # onnxruntime rejects values the config cannot express
                for index, _ in members:
                    responses[index] = pb_utils.InferenceResponse(
                        error=pb_utils.TritonError(f"inference failed: {error}")
                    )
                continue
            offset = 0
            for index, arrays in members:
                rows = arrays[0].shape[0] if self.batched else None
                tensors = [
                    pb_utils.Tensor(name, out[offset : offset + rows] if self.batched else out)
                    for name, out in zip(self.output_names, outputs)
                ]
                responses[index] = pb_utils.InferenceResponse(output_tensors=tensors)
                offset += rows or 0
        return responses


def _validate(arrays, names):
    for name, array in zip(names, arrays):
        if array.size == 0:
            return f"input '{name}' is empty (shape {list(array.shape)}); send at least one element per dimension"
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            return f"input '{name}' contains NaN or infinite values"
    return None
