"""One error hierarchy for the whole product.

Every error a user can cause or meet carries a one-line human message and an
exit code. The CLI maps it to its exit status and stderr, a dashboard page to
``st.error``. Anything that is not a ``BackupError`` is a bug.
"""

from __future__ import annotations


class BackupError(Exception):
    """Base class: ``str(err)`` is the message shown to the user."""

    exit_code = 1
    hint = ""
    # how the audit log records an operation that ended with this error: "error", or
    # "refused" when nothing was attempted (bad input, unconfirmed, busy, unsafe backup)
    audit_outcome = "error"

    def __init__(self, message: str, *, hint: str | None = None, payload: dict | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint
        # what a ``--json`` caller gets on stdout with the failure (e.g. verify's report)
        self.payload = payload

    @property
    def message(self) -> str:
        return str(self)

    def lines(self) -> list[str]:
        """The message as a terminal shows it: one line (any newline in it came from data, not from us),
        unless a subclass lists details of its own."""
        return [str(self)]


class UsageError(BackupError):
    """Bad arguments or bad input from the user."""

    exit_code = 2
    audit_outcome = "refused"


class ConfigError(UsageError):
    """A setting is missing or malformed."""


class DatabaseUnavailable(BackupError):
    """The database cannot be reached or refused the operation."""

    exit_code = 3


class BackupNotFound(BackupError):
    exit_code = 4


class IntegrityError(BackupError):
    """A backup does not verify: hash mismatch, missing or extra file, bad manifest."""

    exit_code = 5
    audit_outcome = "refused"


class FormatError(IntegrityError):
    """A file does not follow the snapshot format (or a newer, unknown version of it)."""


class IncompleteBackup(FormatError):
    """A backup folder or prefix without a manifest: an unfinished write or delete, never a backup."""


class CodecError(FormatError):
    """A value cannot be encoded or a CSV cell cannot be decoded."""


class LockBusy(BackupError):
    """Another backup, restore or clean-up holds the lock of this backup root."""

    exit_code = 6
    audit_outcome = "refused"


class StorageError(BackupError):
    """The backup root cannot be written (permissions, disk full, ...)."""

    exit_code = 7


class LockLost(StorageError):
    """This process lost the lock it held (frozen, suspended or cut off past its lifetime): the operation stops."""


class RestoreRefused(BackupError):
    """A restore (or an archive) was refused before any write (unconfirmed, unsafe input, ...)."""

    exit_code = 8
    audit_outcome = "refused"


# how to go on from an unconfirmed restore or archive, for CLI and Python callers alike
CONFIRM_HINT = "preview it with a dry run (--dry-run, dry_run=True) or confirm it (--yes, confirm=True)"


class KeyMissing(BackupError):
    """A backup is encrypted with a key that is not configured (or the configured key is wrong)."""

    exit_code = 10
    audit_outcome = "refused"

    def __init__(self, message: str, *, fingerprint: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.fingerprint = fingerprint


class AuthError(BackupError):
    exit_code = 9
    audit_outcome = "refused"


class WriteFailed(BackupError):
    """The caller's write inside ``before_write`` raised; its pre-write backup holds the data as it was.

    Nothing is undone automatically (the write may have been partly applied on
    purpose); the message names the backup that undoes it, and the caller's
    exception is the ``__cause__``.
    """

    exit_code = 11

    def __init__(self, message: str, *, backup_id: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.backup_id = backup_id
