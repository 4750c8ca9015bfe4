"""sealcard.hsm."""
