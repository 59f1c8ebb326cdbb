"""UniVoice gateway: the FastAPI service apps talk to, and the bundled Triton it runs locally."""
