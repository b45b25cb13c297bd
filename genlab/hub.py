"""genlab models on the Hugging Face Hub: pull (download, then load strictly) and push (with a model card).

A genlab repo holds the folder ``genlab.export`` writes: ``config.json`` + ``model.safetensors`` (the
layout of huggingface_hub's ``PyTorchModelHubMixin``), ``metrics.json``, ``samples.png`` and the
model card ``README.md``. We use huggingface_hub for everything on the wire (``hf_hub_download`` into
its standard cache, ``create_repo``, ``upload_folder``, ``ModelCard``) but keep our own loader rather
than the mixin's ``from_pretrained``: that one loads non-strictly by default, builds one known class,
and cannot dispatch on ``model_type``. Ours refuses a missing, unexpected or mis-shaped tensor.

Safety: only safetensors are read; a repo with only pickle weights is refused before anything is
downloaded; no file from a repo is ever executed. The token comes from the caller, ``HF_TOKEN`` or the
standard login, and genlab never prints, logs or writes it.

Every failure is a ``HubError`` whose message is one sentence a person can act on.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .models.base import CONFIG_NAME, WEIGHTS_NAME
from .settings import settings as _settings

REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
PULL_FILES = (CONFIG_NAME, WEIGHTS_NAME, "metrics.json", "samples.png", "README.md")


class HubError(RuntimeError):
    """A Hub operation that failed; the message says why in one sentence."""


def timeout() -> float:
    return _settings().hub_timeout


def endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def is_repo_id(spec: str) -> bool:
    """'org/name' that is not a local path (a local folder of that name wins)."""
    return bool(REPO_ID.match(str(spec))) and ".." not in str(spec) and not Path(spec).exists()


def _check_repo_id(repo_id: str) -> None:
    if not REPO_ID.match(repo_id) or ".." in repo_id:
        raise HubError(f"'{repo_id}' is not a Hub repo id: write it as org/name (letters, digits, '.', '_', '-')")


def _is(e: BaseException, word: str) -> bool:
    return any(word in c.__name__ for c in type(e).__mro__)


def _chain(e: BaseException | None) -> list[BaseException]:
    """``e`` and the exceptions it was raised from or while handling."""
    out: list[BaseException] = []
    while e is not None and e not in out:
        out.append(e)
        e = e.__cause__ or e.__context__
    return out


def explain(e: BaseException, repo_id: str, revision: str | None = None, filename: str | None = None) -> str:
    """One sentence for any exception huggingface_hub (or its HTTP client) raises."""
    from huggingface_hub import errors

    chain = _chain(e)  # huggingface_hub wraps what went wrong on the wire in its own errors
    status = next((s for x in chain if (s := getattr(getattr(x, "response", None), "status_code", None))), None)
    if any(
        _is(x, "RemoteProtocol")
        or _is(x, "IncompleteRead")
        or "peer closed connection" in str(x)
        or "Consistency check failed" in str(x)
        for x in chain
    ):
        return (
            f"the download of '{repo_id}' was cut short (the connection closed before the whole file "
            f"arrived); nothing partial was kept: try again"
        )
    if status and status >= 500:
        return (
            f"the Hugging Face Hub answered {status} (a server error) for '{repo_id}'; try again later; "
            f"the local checkpoints still work"
        )
    if isinstance(e, errors.GatedRepoError):
        return f"'{repo_id}' is a gated repo: accept its terms on the Hub and set HF_TOKEN to a token that has access"
    if isinstance(e, errors.RevisionNotFoundError):
        return f"'{repo_id}' has no revision '{revision or 'main'}' (give a branch, a tag or a commit hash)"
    refused = (
        f"the Hub refused access to '{repo_id}' (401): it is private or gated, or it does not exist; "
        f"set HF_TOKEN (or run `hf auth login`) with a token that can read it"
    )
    if isinstance(e, errors.RepositoryNotFoundError):
        return refused if status == 401 else f"the Hub has no model repo '{repo_id}' (if it is private, set HF_TOKEN)"
    if isinstance(e, getattr(errors, "RemoteEntryNotFoundError", errors.EntryNotFoundError)):
        return f"'{repo_id}' has no file '{filename}' at revision {revision or 'main'}"
    if isinstance(e, errors.OfflineModeIsEnabled) or (
        isinstance(e, errors.LocalEntryNotFoundError) and _settings().hub_offline
    ):
        return f"HF_HUB_OFFLINE is set and '{repo_id}' is not in the local Hub cache; the local checkpoints still work"
    if status == 401:
        from huggingface_hub import get_token

        if get_token() is None:  # anonymous: the repo is private or gated (or a push needs a token)
            return refused
        return "the Hub rejected the token (401): check HF_TOKEN or log in again with `hf auth login`"
    if status == 403:
        return f"the token may not do this on '{repo_id}' (403): it needs write access to push"
    if isinstance(e, errors.HfHubHTTPError) and status:
        return f"the Hub answered HTTP {status} for '{repo_id}'"
    if isinstance(e, TimeoutError) or _is(e, "Timeout"):
        return (
            f"the Hub ({endpoint()}) did not answer within {timeout():g} s; try again, or set "
            f"GENLAB_HUB_TIMEOUT to wait longer"
        )
    if (
        isinstance(e, (ConnectionError, errors.LocalEntryNotFoundError, OSError))
        or _is(e, "Connect")
        or _is(e, "Network")
        or _is(e, "Transport")
    ):
        return f"the Hugging Face Hub ({endpoint()}) cannot be reached; the local checkpoints still work"
    return f"{type(e).__name__}: {e}"


@dataclass(frozen=True)
class Pulled:
    path: Path  # the snapshot folder in huggingface_hub's cache: load_model reads it
    repo_id: str
    commit: str | None  # the exact commit the files are from
    files: tuple[str, ...]


def pull(repo_id: str, revision: str | None = None, token: str | None = None) -> Pulled:
    """Download a genlab model into the standard Hub cache, refusing pickle-only repos before any download."""
    from huggingface_hub import HfApi, errors, hf_hub_download

    from . import __version__

    _check_repo_id(repo_id)
    try:
        info = HfApi().model_info(repo_id, revision=revision, token=token, timeout=timeout())
    except Exception as e:  # noqa: BLE001 - every client error becomes one sentence
        # offline but pulled before: the cached snapshot of that revision is as good as a download
        cached = _cached(repo_id, revision)
        if cached is not None and not isinstance(e, (errors.RepositoryNotFoundError, errors.RevisionNotFoundError)):
            return cached
        raise HubError(explain(e, repo_id, revision)) from None
    files = {s.rfilename for s in (info.siblings or [])}
    if WEIGHTS_NAME not in files:
        pickles = sorted(f for f in files if f.lower().endswith(PICKLE_SUFFIXES))
        if pickles:
            raise HubError(
                f"'{repo_id}' holds only pickle weights ({', '.join(pickles[:3])}); genlab loads "
                f"safetensors only and never unpickles a downloaded file"
            )
        raise HubError(f"'{repo_id}' has no {WEIGHTS_NAME}: it is not a genlab model")
    if CONFIG_NAME not in files:
        raise HubError(f"'{repo_id}' has no {CONFIG_NAME}: it is not a genlab model")
    got = []
    for name in PULL_FILES:
        if name not in files:
            continue
        try:
            path = hf_hub_download(
                repo_id,
                name,
                revision=info.sha or revision,
                token=token,
                library_name="genlab",
                library_version=__version__,
                etag_timeout=timeout(),
            )
        except Exception as e:  # noqa: BLE001
            raise HubError(explain(e, repo_id, revision, name)) from None
        got.append(name)
    from .catalog import remember_pulled

    remember_pulled(repo_id, Path(path).parent)
    return Pulled(Path(path).parent, repo_id, info.sha, tuple(got))


def _cached(repo_id: str, revision: str | None) -> Pulled | None:
    from huggingface_hub import hf_hub_download

    try:
        cfg = hf_hub_download(repo_id, CONFIG_NAME, revision=revision, local_files_only=True)
        hf_hub_download(repo_id, WEIGHTS_NAME, revision=revision, local_files_only=True)
    except Exception:  # noqa: BLE001 - not cached: the caller reports the original error
        return None
    folder = Path(cfg).parent
    return Pulled(folder, repo_id, folder.name, tuple(p.name for p in folder.iterdir()))


def load(repo_id: str, revision: str | None = None, map_location="cpu", token: str | None = None):
    """``pull`` then ``genlab.load_model`` (strict, safetensors)."""
    from .models import load_model

    return load_model(pull(repo_id, revision, token).path, map_location=map_location)


@dataclass(frozen=True)
class Pushed:
    repo_id: str
    url: str
    commit: str | None
    files: tuple[str, ...]


def push(
    source: str | Path,
    repo_id: str,
    private: bool = False,
    token: str | None = None,
    evaluate: bool = False,
    temperature: float | None = None,
) -> Pushed:
    """Upload a run's checkpoint or a model folder as a genlab repo (config, weights, metrics.json,
    samples.png and a generated model card with the Hub's metadata)."""
    from huggingface_hub import HfApi, get_token

    from .export import HUB_FILES, export_model, read_metrics
    from .models import resolve_model_dir

    _check_repo_id(repo_id)
    if not (token or get_token()):
        raise HubError(
            "pushing needs a Hub token with write access: set HF_TOKEN, run `hf auth login`, or give the token"
        )
    source = Path(source)
    model_dir = resolve_model_dir(source)
    t = temperature if temperature is not None else read_metrics(model_dir).get("samples", {}).get("temperature", 1.0)
    with tempfile.TemporaryDirectory(prefix="genlab-push-") as tmp:
        folder = export_model(
            source, Path(tmp) / repo_id.split("/")[1], repo_id=repo_id, temperature=t, evaluate=evaluate
        )
        api = HfApi()
        try:
            api.create_repo(repo_id, private=private, exist_ok=True, token=token)
            info = api.upload_folder(
                repo_id=repo_id,
                folder_path=folder,
                allow_patterns=list(HUB_FILES),
                token=token,
                commit_message=f"genlab push of {source.name}",
            )
        except Exception as e:  # noqa: BLE001
            raise HubError(explain(e, repo_id)) from None
    return Pushed(repo_id, f"{endpoint()}/{repo_id}", getattr(info, "oid", None), HUB_FILES)
