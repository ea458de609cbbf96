"""Model fields for secrets stored encrypted at rest."""

import base64
import hashlib
from functools import cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.db import models

_PREFIX = "enc1:"


@cache
def _fernet(key_material: str) -> Fernet:
    digest = hashlib.sha256(f"siyu-at-rest:{key_material}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt_text(value: str) -> str:
    return _PREFIX + _fernet(settings.ENCRYPTION_KEY).encrypt(value.encode()).decode()


def decrypt_text(value: str) -> str:
    if not value.startswith(_PREFIX):
        raise ValueError("stored secret is not in the encrypted format")
    try:
        return _fernet(settings.ENCRYPTION_KEY).decrypt(value[len(_PREFIX) :].encode()).decode()
    except InvalidToken as exc:
        raise ValueError("stored secret cannot be decrypted: SIYU_ENCRYPTION_KEY changed?") from exc


class EncryptedTextField(models.TextField):
    """A text column whose value is Fernet-encrypted in the database and plain in Python.

    Not filterable by value (ciphertexts are randomised); look rows up by another column.
    """

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        if value is None or value == "":
            return value
        return decrypt_text(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt_text(str(value))
