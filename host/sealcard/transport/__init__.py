"""sealcard.transport."""
