"""sealcard.parties."""
