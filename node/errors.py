"""The node's exception tree. Every error a user can cause carries a stable machine-readable `code`.

Domain code raises these and knows nothing of HTTP; `ftm.node.http.errors` maps each class to a status code in
one place. Messages describe *where* input went wrong (a field, a line, a byte offset) and never quote persona
content, so an error can be logged or returned without breaking the privacy invariant.

    FtmError
    ├── InputError               400  the request or upload is wrong; fix it and retry
    │   ├── MalformedInput       400  bytes that do not parse as what they claim (JSON, msgpack, PNG, zip, UTF-8)
    │   ├── UnsupportedFormat    415  no importer recognises the upload
    │   ├── ConsentRequired      400  the uploader did not accept the terms
    │   ├── EmptyPersona         422  nothing usable: no prompt, memory or messages
    │   ├── InvalidField         422  a field has the wrong type or value
    │   └── LimitExceeded        413  too large, too long or too many
    ├── Forbidden                403  the token given is wrong, or its access was revoked
    ├── QuotaExceeded            429  this sender has used today's quota
    ├── NotFound                 404  no such resident (or other object)
    ├── IntegrityError           500  stored data failed authentication (tampering or corruption)
    └── ConfigurationError       --   the operator's settings or data directory are wrong (CLI exits 2)
"""

from __future__ import annotations


class FtmError(Exception):
    """Base of every error the node raises on purpose."""

    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InputError(FtmError):
    code = "bad_request"


class MalformedInput(InputError):
    code = "malformed_input"


class UnsupportedFormat(InputError):
    code = "unknown_format"


class ConsentRequired(InputError):
    code = "consent_required"


class EmptyPersona(InputError):
    code = "no_usable_content"


class InvalidField(InputError):
    code = "invalid_field"


class LimitExceeded(InputError):
    code = "too_large"


class Forbidden(FtmError):
    code = "forbidden"


class QuotaExceeded(FtmError):
    code = "quota_exceeded"


class NotFound(FtmError):
    code = "not_found"


class IntegrityError(FtmError):
    code = "integrity_failure"


class ConfigurationError(FtmError):
    code = "configuration_error"
