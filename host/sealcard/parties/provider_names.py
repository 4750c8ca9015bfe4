"""The names the card provider's CA goes by on disk and in the environment.

Apart from `parties/provider.py` so that the CLI can name them in its help texts without
importing the CA's cryptography.
"""

from __future__ import annotations

from typing import Final

ROOT_CERT_FILE: Final = "root.pem"
ROOT_KEY_FILE: Final = "root-key.pem"
PASSPHRASE_ENV: Final = "SEALCARD_PROVIDER_PASSPHRASE"  # noqa: S105 (a variable name)
