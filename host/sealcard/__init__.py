"""sealcard: smart cards holding a user's blockchain key, sealed from the issuer HSM to the card."""

__version__ = "0.1.0"
