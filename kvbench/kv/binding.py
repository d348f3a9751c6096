"""Binding a KV artifact to the document a buyer holds: the same token ids, and as many.

An artifact's metadata says which tokens it was computed from (``token_ids_hash``: SHA-256
of the int64 ids) and how many (``num_tokens``). :meth:`KVArtifact.check_compatible` checks
the model and tokenizer; :func:`check_document` checks the document, before the KV is used:
another document's artifact of the same model and length, a longer one (tokens appended) or
a shorter one (tokens cut) is refused with one line naming the field that differs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kvbench.kv.artifact import ArtifactMismatchError, KVArtifact
from kvbench.model.corpus import token_ids_sha256


@dataclass(frozen=True)
class Document:
    """What a buyer's token ids bind an artifact to: their count and hash."""

    num_tokens: int
    token_ids_hash: str

    @classmethod
    def of(cls, token_ids: torch.Tensor) -> Document:
        """The binding of ``token_ids`` ``(L,)`` or ``(1, L)`` (hashed on the host; pass CPU ids inside timed code)."""
        return cls(int(token_ids.numel()), token_ids_sha256(token_ids))


def check_document(artifact: KVArtifact, document: torch.Tensor | Document) -> None:
    """Refuse ``artifact`` unless it was made from exactly ``document``'s token ids.

    ``document`` is the buyer's token ids ``(L,)`` or ``(1, L)``, or their :class:`Document`.
    Lengths are compared first (the metadata's ``num_tokens`` and the tensors' token axis,
    which a forged header could not both fake), then the hash.

    Raises
    ------
    ArtifactMismatchError
        Naming ``num_tokens`` or ``token_ids_hash`` and both values.
    """
    doc = document if isinstance(document, Document) else Document.of(document)
    claimed = artifact.meta.get("num_tokens")
    if claimed != str(doc.num_tokens) or artifact.num_tokens != doc.num_tokens:
        raise ArtifactMismatchError(
            f"KV artifact num_tokens is {claimed!r} ({artifact.num_tokens} in its tensors) but the document has "
            f"{doc.num_tokens} tokens: it was made for another document"
        )
    found = artifact.meta.get("token_ids_hash")
    if found != doc.token_ids_hash:
        raise ArtifactMismatchError(
            f"KV artifact token_ids_hash is {_short(found)} but the document's is {_short(doc.token_ids_hash)}: "
            "it was made from another document"
        )


def _short(value: object) -> str:
    """A hash as its first 16 hex digits (enough to tell two apart in a message)."""
    return repr(value[:16] + "...") if isinstance(value, str) and len(value) > 16 else repr(value)
