"""space_models: Speech2Landmarks, PoseGen and Landmarks2Latents trained from the shards."""
