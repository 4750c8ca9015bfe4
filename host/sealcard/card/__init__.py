"""sealcard.card."""
