"""genlab models on the Hugging Face Hub: pull (download, then load strictly) and push (with a model card).

A genlab repo holds the folder ``genlab.export`` writes: ``config.json`` + ``model.safetensors`` (the
layout of huggingface_hub's ``PyTorchModelHubMixin``), ``metrics.json``, ``samples.png`` and the
model card ``README.md``. We use huggingface_hub for everything on the wire (``hf_hub_download`` into
its standard cache, ``create_repo``, ``upload_folder``, ``ModelCard``) but keep our own loader rather
than the mixin's ``from_pretrained``: that one loads non-strictly by default, builds one known class,
and cannot dispatch on ``model_type``. Ours refuses a missing, unexpected or mis-shaped tensor.

Safety: only safetensors are read; a repo with only pickle weights is refused before anything is
downloaded; no file from a repo is ever executed. A pull is bounded: from the repo's listed sizes,
before any download, a repo whose genlab files total more than ``GENLAB_MAX_PULL_BYTES`` (512 MiB;
``GENLAB_PUBLIC_MAX_PULL_BYTES``, 64 MiB, in public mode) is refused, and so is a JSON file or card
over 1 MiB or a samples image over 16 MiB; each download is stopped as soon as it passes what the
listing declared (or, where it declared no size, what the caps and the limit leave), and every file
is checked for its size and kind once it is in. A pull that fails removes what it added to the cache.

The token comes from the caller, ``HF_TOKEN`` or the standard login, and genlab never prints, logs or
writes it.

Every failure is a ``HubError`` whose message is one sentence a person can act on.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import names, public
from .errors import CheckpointError, HubError
from .export import HUB_FILES, export_model, read_metrics, read_model_folder
from .models import load_model as load_local_model
from .models import resolve_model_dir
from .models.base import CONFIG_NAME, WEIGHTS_NAME
from .paths import cache_dir
from .runs.grids import readable
from .schema import TEXT, problem, read_json, short
from .settings import settings as _settings
from .storage import atomic_write_json
from .version import __version__

REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
PULL_FILES = (CONFIG_NAME, WEIGHTS_NAME, names.METRICS, names.SAMPLES, names.CARD)
# The largest each of genlab's small files can be: ours are a few KiB (the samples grid a few hundred),
# so a bigger one is not a file genlab wrote. The weights are bounded by the pull limit alone.
FILE_CAPS = {CONFIG_NAME: 2**20, names.METRICS: 2**20, names.CARD: 2**20, names.SAMPLES: 16 * 2**20}


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


def explain(e: BaseException, repo_id: str, revision: str | None = None, filename: str | None = None) -> str:  # noqa: C901, PLR0912 - to split (one screen per function)
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
    """Download a genlab model into the standard Hub cache, refusing pickle-only and oversized repos before
    any download, bounding each download, and keeping nothing of a pull that does not finish."""
    from huggingface_hub import HfApi, errors

    _check_repo_id(repo_id)
    try:
        info = HfApi().model_info(repo_id, revision=revision, token=token, timeout=timeout(), files_metadata=True)
    except Exception as e:  # noqa: BLE001 - every client error becomes one sentence
        # offline but pulled before: the cached snapshot of that revision is as good as a download
        cached = _cached(repo_id, revision)
        if cached is not None and not isinstance(e, (errors.RepositoryNotFoundError, errors.RevisionNotFoundError)):
            return cached
        raise HubError(explain(e, repo_id, revision)) from None
    listed = _listed_sizes(info)
    files = set(listed)
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
    wanted = {name: listed[name] for name in PULL_FILES if name in listed}
    _check_sizes(repo_id, wanted)
    with _removed_if_unfinished(repo_id):
        folder = _download(repo_id, info.sha or revision, wanted, token)
        try:  # every file read as the pages will read it: a malformed one is refused now, not on every page later
            read_model_folder(folder)
        except ValueError as e:
            raise HubError(f"'{repo_id}' is not a model genlab can offer: {e}; nothing was kept") from None

    remember_pulled(repo_id, folder)
    return Pulled(folder, repo_id, info.sha, tuple(wanted))


def _listed_sizes(info) -> dict[str, int | None]:
    """Each file of the repo with the size its listing gives (None where it gives none)."""
    return {s.rfilename: s.size if s.size is not None else getattr(s.lfs, "size", None) for s in info.siblings or []}


def _pull_limit() -> tuple[int, str]:
    """The most one pull may download, and the phrase (naming its setting) that says which limit it is."""
    if public.enabled():
        return public.max_pull_bytes(), "this public app's pull limit of {} (GENLAB_PUBLIC_MAX_PULL_BYTES)"
    return public.max_pull_bytes(), "the pull limit of {} (GENLAB_MAX_PULL_BYTES)"


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.4g} {unit}"
    return f"{n} bytes"


def _check_sizes(repo_id: str, wanted: dict[str, int | None]) -> None:
    """Refuse, from the listing alone, a repo too big to pull or holding a file too big to be genlab's."""
    for name, size in wanted.items():
        cap = FILE_CAPS.get(name)
        if size is not None and cap is not None and size > cap:
            raise HubError(
                f"'{repo_id}' lists a {name} of {_size(size)}, larger than any genlab {name} (at most {_size(cap)}); "
                f"nothing was downloaded"
            )
    total = sum(size for size in wanted.values() if size is not None)
    limit, phrase = _pull_limit()
    if total > limit:
        raise HubError(
            f"'{repo_id}' is {_size(total)} of model files, more than {phrase.format(_size(limit))}; "
            f"nothing was downloaded"
        )


def _download(repo_id: str, revision: str | None, wanted: dict[str, int | None], token: str | None) -> Path:
    """Download ``wanted`` into the Hub cache, each file bounded; the snapshot folder they are in."""
    # a file the listing gave no size for may take what the caps and the declared files leave of the limit
    left = _pull_limit()[0] - sum(size for size in wanted.values() if size is not None)
    for name, size in wanted.items():
        bound = size if size is not None else max(0, min(FILE_CAPS.get(name, left), left))
        path = _fetch(repo_id, revision, name, token, bound, size)
        got = path.stat().st_size  # a blob already in the cache was never counted on the wire
        if got > bound:
            raise _stopped(repo_id, name, bound, size)
        if size is not None and got != size:
            raise HubError(
                f"'{repo_id}' sent {_size(got)} of {name} where its listing said {_size(size)}; nothing was kept"
            )
        if size is None:
            left -= got
        _check_kind(repo_id, name, path)
    return path.parent


class _TooMuch(Exception):
    """More bytes of a file arrived than its bound (raised inside huggingface_hub's download loop)."""


def _bounded_bar(bound: int) -> type:
    """A huggingface_hub progress bar that stops the download once more than ``bound`` bytes arrived."""
    from huggingface_hub.utils import tqdm

    class Bounded(tqdm):
        # huggingface_hub's HTTP download reports each chunk to the bar before it writes it: the one hook that
        # stops a download midway, so a listing that understates a size cannot fill the disk. (A Xet download
        # reports from its own threads; there the size check after the download is what refuses the file.)
        received = 0

        def update(self, n=1):
            self.received += n or 0
            if self.received > bound:
                raise _TooMuch
            return super().update(n)

    return Bounded


def _fetch(repo_id: str, revision: str | None, name: str, token: str | None, bound: int, size: int | None) -> Path:
    from huggingface_hub import hf_hub_download

    try:
        return Path(
            hf_hub_download(
                repo_id,
                name,
                revision=revision,
                token=token,
                library_name="genlab",
                library_version=__version__,
                etag_timeout=timeout(),
                tqdm_class=_bounded_bar(bound),
            )
        )
    except _TooMuch:
        raise _stopped(repo_id, name, bound, size) from None
    except Exception as e:  # noqa: BLE001
        raise HubError(explain(e, repo_id, revision, name)) from None


def _stopped(repo_id: str, name: str, bound: int, size: int | None) -> HubError:
    said = _size(size) if size is not None else "no size"
    return HubError(
        f"'{repo_id}' sent more than {_size(bound)} of {name} (its listing said {said}); "
        f"the download was stopped and nothing was kept"
    )


def _is_json_object(path: Path) -> bool:
    try:
        return isinstance(json.loads(path.read_bytes()), dict)
    except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested deeper than the parser goes
        return False


def _is_png(path: Path) -> bool:
    """A PNG that decodes, of a size a page can show (``genlab.runs.grids.readable``)."""
    with path.open("rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n" and readable(path) is not None


def _is_safetensors(path: Path) -> bool:
    """An 8-byte little-endian header length, then a JSON header that fits in the file."""
    with path.open("rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:] == b"{" and 8 + int.from_bytes(head[:8], "little") <= path.stat().st_size


KINDS: dict[str, tuple[str, Callable[[Path], bool]]] = {
    CONFIG_NAME: ("a JSON object", _is_json_object),
    names.METRICS: ("a JSON object", _is_json_object),
    names.SAMPLES: ("a PNG image of at most 2100×2100 pixels", _is_png),
    WEIGHTS_NAME: ("a safetensors file", _is_safetensors),
}


def _check_kind(repo_id: str, name: str, path: Path) -> None:
    what, ok = KINDS.get(name, ("", lambda _: True))
    if not ok(path):
        raise HubError(f"'{repo_id}' sent a {name} that is not {what}; nothing was kept")


def _cache_folder(repo_id: str) -> Path:
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    return Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type="model")


def _entries(folder: Path) -> set[Path]:
    return set(folder.rglob("*")) if folder.exists() else set()


@contextmanager
def _removed_if_unfinished(repo_id: str) -> Iterator[None]:
    """Remove what a pull added to the repo's folder in the Hub cache (blobs, snapshot links, folders) if it
    does not finish: the offline fallback (``_cached``) would otherwise load a half-pulled snapshot."""
    folder = _cache_folder(repo_id)
    before = _entries(folder)
    existed = folder.exists()
    try:
        yield
    except BaseException:
        for p in sorted(_entries(folder) - before, key=lambda p: len(p.parts), reverse=True):  # deepest first
            try:
                if p.is_dir() and not p.is_symlink():
                    p.rmdir()
                else:
                    p.unlink()
            except OSError:
                pass  # a folder another download of this repo has just written into: it stays
        if not existed:
            try:
                folder.rmdir()
            except OSError:
                pass  # as above
        raise


def _cached(repo_id: str, revision: str | None) -> Pulled | None:
    from huggingface_hub import hf_hub_download

    try:
        cfg = hf_hub_download(repo_id, CONFIG_NAME, revision=revision, local_files_only=True)
        hf_hub_download(repo_id, WEIGHTS_NAME, revision=revision, local_files_only=True)
    except Exception:  # noqa: BLE001 - not cached: the caller reports the original error
        return None
    folder = Path(cfg).parent
    return Pulled(folder, repo_id, folder.name, tuple(p.name for p in folder.iterdir()))


def load_model(spec: str | os.PathLike, revision: str | None = None, map_location="cpu", token: str | None = None):
    """A model from a local folder (a saved model or a run directory) or a Hub repo id ``org/name``.

    Hub repos are downloaded into huggingface_hub's standard cache and loaded strictly, like a local
    folder; a local folder of the same name wins. Raises ``CheckpointError`` or ``genlab.hub.HubError``.
    """
    # 'checkpoints/nope' has a repo id's shape, but its first part is a folder of models here: a mistyped path
    if is_repo_id(str(spec)) and not Path(spec).exists() and _holds_models(Path(spec).parent):
        raise CheckpointError(
            f"{spec} does not exist: {Path(spec).parent}/ has no folder '{Path(spec).name}' "
            f"(a Hub repo id would be read as org/name only where no local folder '{Path(spec).parent}' exists)"
        )
    if is_repo_id(str(spec)):
        try:
            path = pull(str(spec), revision, token).path
        except HubError as e:  # 'runs/typo' looks like a repo id too: say both what was looked for
            raise HubError(f"{spec} is no local folder, and {e}") from None
        return load_local_model(path, map_location)
    if revision is not None:
        raise CheckpointError(f"{spec} is a local folder; a revision applies only to a Hub repo id (org/name)")
    return load_local_model(spec, map_location)


def _holds_models(folder: Path) -> bool:
    """A local folder with a saved model or a run in it (checkpoints/, runs/)."""
    try:
        return folder.is_dir() and any(
            (p / names.CONFIG).is_file() or (p / names.RUN_INFO).is_file() for p in folder.iterdir()
        )
    except OSError:
        return False


WHOLE_LIST = "(the pulled-models list)"  # what Models names, and Remove resets, when the list itself is unreadable


def pulled_list_file() -> Path:
    return cache_dir() / "hub-models.json"


def pulled_models() -> tuple[dict[str, str], dict[str, str]]:
    """The pulled-models list as (repo id -> snapshot folder, repo id -> why its record is unusable)."""
    try:
        known = read_json(pulled_list_file())
    except FileNotFoundError:
        return {}, {}
    except (OSError, ValueError) as e:
        return {}, {WHOLE_LIST: str(e)}
    good, bad = {}, {}
    for repo_id, folder in known.items():
        if not is_repo_id(repo_id):
            bad[repo_id] = f"{pulled_list_file()} holds {short(repo_id)}, which is not a repo id"
        elif not isinstance(folder, str) or problem(folder, TEXT):
            bad[repo_id] = f"{pulled_list_file()}: the folder recorded for {repo_id} is not a path"
        else:
            good[repo_id] = folder
    return good, bad


def _write_registry(update) -> None:
    """Apply ``update(known)`` to the pulled-models list (a malformed list starts afresh)."""
    path = pulled_list_file()
    try:
        known = read_json(path)
    except (OSError, ValueError):
        known = {}
    known = update(known)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, known)
    except OSError:
        pass  # an unwritable cache only means the list is not updated


def remember_pulled(repo_id: str, folder: Path) -> None:
    """Record a pulled model so that every model picker offers it (newest pull first)."""
    _write_registry(lambda known: {repo_id: str(folder), **{k: v for k, v in known.items() if k != repo_id}})


def forget_pulled(repo_id: str) -> None:
    """Take a pulled model (a broken one included) off every picker; its files stay in the Hub cache."""
    if repo_id == WHOLE_LIST:  # the list itself is unreadable: start it afresh
        _write_registry(lambda known: {})
    else:
        _write_registry(lambda known: {k: v for k, v in known.items() if k != repo_id})


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
