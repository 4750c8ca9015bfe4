"""sealcard.formats."""
