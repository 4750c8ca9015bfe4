"""The error types every layer raises; only the CLI turns them into messages and exit codes."""


class SealcardError(Exception):
    """Base of every error sealcard raises on purpose."""


class ConfigurationError(SealcardError):
    """A setting, a file, a folder, an environment variable or a value the caller gave is
    missing or wrong (the CLI exits with 2: the command line needs fixing)."""


class VerificationError(SealcardError):
    """A signature, certificate or attestation did not check out."""


class UnavailableError(SealcardError):
    """Something the operation needs is not there or does not answer (a service, a reader, a
    card, a database): trying again once it is there may work. The CLI exits with 3."""
