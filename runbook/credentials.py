"""Which names are credentials: the one rule shared by the probes (the URLs they keep) and the
report's redaction. Pure: strings in, booleans out."""

from __future__ import annotations

import re

# Words that make a query or form key a credential wherever they stand in it: accessToken,
# authToken, api_key, APIKey, sig, X-Amz-Signature, client_secret, sessionId...
CREDENTIAL_WORDS = frozenset(
    {"token", "auth", "authorization", "key", "apikey", "password", "passwd", "pwd", "pass", "passphrase",
     "secret", "sig", "signature", "jwt", "session", "sessionid", "ticket", "credential", "credentials",
     "cookie", "bearer", "otp", "nonce"}
)
# The words of a key: split at "_", "-", "." and camelCase humps ("XAmzSignature" -> X, Amz, Signature).
_KEY_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def is_credential_key(key: str) -> bool:
    """Whether a query (or form) key names a credential: one of its words is in CREDENTIAL_WORDS.

    Whole words only: ``monkey``, ``keyboard`` or ``tokenizer_mode`` are not credentials.
    """
    return any(word.lower() in CREDENTIAL_WORDS for word in _KEY_WORD.findall(key))
