"""sealcard.cli."""
