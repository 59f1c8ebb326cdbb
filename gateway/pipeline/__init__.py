"""The live translation pipeline — VAD -> STT -> MT -> synthesis — as plain async code, no sockets."""
