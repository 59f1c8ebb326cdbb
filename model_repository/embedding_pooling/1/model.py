"""Utterance embedding = L2-normalised mean of the partial d-vectors (resemblyzer's embed_utterance)."""

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            partial = pb_utils.get_input_tensor_by_name(request, "partial_embeddings").as_numpy()
            mean = partial.mean(axis=0)
            norm = np.linalg.norm(mean)
            if partial.shape[0] == 0 or not np.isfinite(norm) or norm == 0:
                error = pb_utils.TritonError("no usable partial embeddings to pool (empty or all-zero input)")
                responses.append(pb_utils.InferenceResponse(error=error))
                continue
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("embedding", (mean / norm).astype(np.float32))]))
        return responses
