"""The archive: every frame, every latent layer as received, and decoded images."""
