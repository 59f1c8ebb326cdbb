"""The light shared core: each rule that training, export, the Triton models, the gateway and the benchmarks
must agree on, written once.

    univoice_core  <-  export, training, gateway, model_repository, benchmarks
    export -> training   (export packages what training made; training never imports export)
    gateway -> export    (export never imports the gateway; nor do training and the Triton models)

The core imports none of them, nor anything heavier than numpy, soxr, soundfile and pyworld: the Triton image
copies this package alone. `tests/test_import_graph.py` holds these rules.
"""
