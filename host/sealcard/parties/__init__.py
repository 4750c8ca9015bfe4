"""sealcard.parties: each party's workflow over the layers below, callable as a library."""
