"""V-JEPA 2 embeddings: windows, preprocessing, the encoder, the saved arrays."""
