"""Reaching the Hugging Face Hub: one bounded question first, and one line when it cannot be reached.

Left alone, ``datasets`` and ``transformers`` retry an unreachable Hub for tens of seconds
(huggingface_hub's backoff: five retries, 1-8 s apart, each with its own timeouts) and end in a
long traceback. Here a dataset or model id is first looked up with one request of at most
``timeout_s`` seconds (no retries), in a daemon thread that is abandoned if it hangs:

* the Hub answers: the loader runs as usual (a long download is not cut short);
* the Hub says the id does not exist or is not accessible: :class:`UnreachableError` saying so;
* no answer (no network, DNS, a proxy, a timeout): the loader runs once with the Hub switched
  off, from the local cache alone; where nothing is cached, :class:`UnreachableError` naming
  the id and saying that the network or the cache is the problem.

With ``HF_HUB_OFFLINE=1`` nothing is asked: the loader runs from the cache, and a miss is the
same one line. Local paths never reach this module.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from kvbench.config.errors import UnreachableError

T = TypeVar("T")
log = logging.getLogger(__name__)
NOT_FOUND = ("RepositoryNotFoundError", "GatedRepoError", "RevisionNotFoundError", "DatasetNotFoundError")
NOISY_LOGGERS = ("huggingface_hub", "datasets", "transformers", "httpx")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and every cause or context behind it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_repo_id(name: str) -> bool:
    """Whether ``name`` can be a Hub id (``owner/name``); a path that does not exist cannot, and is
    left to the loader, whose own error says the file is missing (not the network)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def not_found(exc: BaseException) -> bool:
    """The Hub answered that the id does not exist, or that this user may not read it."""
    return any(type(e).__name__ in NOT_FOUND for e in _chain(exc))


def within(fn: Callable[[], T], timeout_s: float) -> T:
    """``fn()``'s result, or :class:`TimeoutError` after ``timeout_s`` seconds (``fn`` is left running
    in a daemon thread, which never keeps the process alive). Its own exceptions are re-raised."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="kvbench-hub", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {timeout_s:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The libraries' own retry warnings and progress lines off: the caller says what went wrong, once."""
    loggers = [logging.getLogger(name) for name in NOISY_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


@contextlib.contextmanager
def hub_off() -> Iterator[None]:
    """Every Hub request refused at once (huggingface_hub's offline mode, read at each call), so a
    loader answers from the local cache or fails without retrying."""
    from huggingface_hub import constants

    modules: list[Any] = [constants]
    with contextlib.suppress(ImportError):
        import datasets.config

        modules.append(datasets.config)
    saved = [m.HF_HUB_OFFLINE for m in modules]
    for m in modules:
        m.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        for m, value in zip(modules, saved):
            m.HF_HUB_OFFLINE = value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _lookup(kind: str, repo: str, revision: str | None, timeout_s: float) -> None:
    """One request for the repository's metadata (raises what the Hub or the network raised)."""
    from huggingface_hub import HfApi

    info = HfApi().dataset_info if kind == "dataset" else HfApi().model_info
    within(lambda: info(repo, revision=revision, timeout=timeout_s), timeout_s)


def from_hub(key: str, kind: str, repo: str, load: Callable[[], T], timeout_s: float, revision: str | None = None) -> T:
    """``load()`` for the Hub ``kind`` (``dataset`` or ``model``) ``repo``, named ``key`` in errors.

    Raises
    ------
    UnreachableError
        One line naming ``key`` and ``repo``: not on the Hub (or not accessible), or neither
        reachable nor in the local cache.
    """
    if os.environ.get("HF_HUB_OFFLINE"):
        reason = "HF_HUB_OFFLINE is set"
    else:
        try:
            with quiet():
                _lookup(kind, repo, revision, timeout_s)
        except Exception as exc:
            if not_found(exc):
                raise UnreachableError(
                    f"{key}={repo!r}: no such {kind} on the Hugging Face Hub, or not accessible "
                    f"without a token ({_first_line(exc)})"
                ) from None
            reason = f"the Hugging Face Hub is unreachable: {_first_line(exc)}"
        else:
            return load()  # the Hub answered: a long download is not cut short
    with quiet(), hub_off():
        try:
            result = load()
        except Exception:
            raise UnreachableError(
                f"{key}={repo!r} could not be loaded: the network or the local cache is the problem "
                f"({reason}; and it is not in the local cache)"
            ) from None
    if not os.environ.get("HF_HUB_OFFLINE"):
        log.warning("%s=%r: %s; using the local cache", key, repo, reason)
    return result
