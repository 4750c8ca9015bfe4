"""The error types every layer raises; only the CLI turns them into messages and exit codes."""


class SealcardError(Exception):
    """Base of every error sealcard raises on purpose."""


class ConfigurationError(SealcardError):
    """A setting, a file or an environment variable is missing or wrong."""


class VerificationError(SealcardError):
    """A signature, certificate or attestation did not check out."""
