"""Everything that talks to Triton: the bundled-server launcher and model-repository control."""
