"""sealcard.crypto."""
