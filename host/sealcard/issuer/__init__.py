"""sealcard.issuer."""
