"""Account passwords: Argon2id hashes (RFC 9106) and issuer-generated credentials.

Two cost profiles, both Argon2id, told apart by the parameters stored in each encoded hash:

- ``CHOSEN``: for passwords a person chose (operators; customers who change theirs): OWASP's
  minimum for Argon2id, m=19 MiB, t=2, p=1 (about 30 ms here). A guessable secret needs the
  slow hash.
- ``GENERATED``: for the credentials the issuer makes at bulk intake (26 base32 characters,
  130 bits from the OS RNG): m=1 MiB, t=1, p=1 (about 1 ms). No dictionary reaches a 130-bit
  secret, so the cost buys nothing there, and 10,000 customers are hashed in seconds, not the
  hour the chosen profile would take.

Pure functions (no I/O besides the OS RNG); the secret never enters an exception message.
"""

from __future__ import annotations

import base64
import functools
import secrets
from dataclasses import dataclass
from typing import Final

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

GENERATED_PASSWORD_BYTES: Final = 17  # 136 bits -> 27 base32 characters, 26 kept (130 bits)
GENERATED_PASSWORD_CHARS: Final = 26
MIN_CHOSEN_LENGTH: Final = 12
MAX_PASSWORD_LENGTH: Final = 256


@dataclass(frozen=True)
class Profile:
    """Argon2id cost parameters."""

    time_cost: int
    memory_kib: int
    parallelism: int

    def hasher(self) -> PasswordHasher:
        return PasswordHasher(
            time_cost=self.time_cost,
            memory_cost=self.memory_kib,
            parallelism=self.parallelism,
            type=Type.ID,
        )


CHOSEN: Final = Profile(time_cost=2, memory_kib=19 * 1024, parallelism=1)
GENERATED: Final = Profile(time_cost=1, memory_kib=1024, parallelism=1)

_HASHERS = {CHOSEN: CHOSEN.hasher(), GENERATED: GENERATED.hasher()}


@functools.cache
def _dummy_hash() -> str:
    """A hash of nothing anyone knows: verified against when the login does not exist, so
    that an unknown login costs about what a customer's wrong password costs."""
    return _HASHERS[GENERATED].hash(secrets.token_urlsafe(24))


class PasswordPolicyError(ValueError):
    """A chosen password is too short or too long (the message never holds the password)."""


def generate_password() -> str:
    """A fresh credential: 26 characters of base32 (130 bits), grouped for typing."""
    raw = base64.b32encode(secrets.token_bytes(GENERATED_PASSWORD_BYTES)).decode("ascii")
    text = raw[:GENERATED_PASSWORD_CHARS].lower()
    return "-".join(text[i : i + 5] for i in range(0, len(text), 5))


def check_chosen(password: str) -> None:
    """Refuse a chosen password shorter than 12 characters or longer than 256."""
    if len(password) < MIN_CHOSEN_LENGTH:
        raise PasswordPolicyError(f"a password has at least {MIN_CHOSEN_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise PasswordPolicyError(f"a password has at most {MAX_PASSWORD_LENGTH} characters")


def hash_password(password: str, profile: Profile = CHOSEN) -> str:
    """The Argon2id encoded hash (``$argon2id$v=19$m=..,t=..,p=..$salt$hash``)."""
    if len(password) > MAX_PASSWORD_LENGTH:
        raise PasswordPolicyError(f"a password has at most {MAX_PASSWORD_LENGTH} characters")
    return _HASHERS[profile].hash(password)


def verify_password(encoded: str | None, password: str) -> bool:
    """Whether `password` matches `encoded` (constant time in the password, inside Argon2).

    `encoded` None (no such account) still runs one Argon2 verification, so the answer takes
    as long as for a real account."""
    if len(password) > MAX_PASSWORD_LENGTH:
        password = password[:MAX_PASSWORD_LENGTH]
    hasher = _HASHERS[CHOSEN]
    try:
        if encoded is None:
            hasher.verify(_dummy_hash(), password)
            return False
        return hasher.verify(encoded, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
