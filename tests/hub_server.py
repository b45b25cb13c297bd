"""A local stand-in for the Hugging Face Hub: the routes huggingface_hub calls to download and upload.

Stdlib only (``ThreadingHTTPServer`` on 127.0.0.1). Repos live in memory as commits of
``{path: bytes}``; every route answers as the Hub does, including the ``X-Error-Code`` headers
that huggingface_hub turns into ``RepositoryNotFoundError``, ``RevisionNotFoundError`` and
``EntryNotFoundError``. ``requests`` records every (method, path) for the tests to inspect.

File sizes are listed as the Hub lists them (``model_info(files_metadata=True)`` asks with ``?blobs=true``,
and the tree route always has them); ``listed_sizes`` makes the listing say something else than the
bytes served, or say nothing, so that a test can declare a size of gigabytes without serving them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

TOKEN = "hf_localtesttoken_0123456789abcdef"


@dataclass
class Repo:
    private: bool = False
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)

    def commit(self, files: dict[str, bytes], branch: str = "main", replace: bool = False) -> str:
        parent = {} if replace or branch not in self.refs else dict(self.commits[self.refs[branch]])
        parent.update(files)
        sha = hashlib.sha1(
            json.dumps(sorted((k, hashlib.sha1(v).hexdigest()) for k, v in parent.items())).encode()
            + str(len(self.commits)).encode()
        ).hexdigest()
        self.commits[sha] = parent
        self.refs[branch] = sha
        return sha

    def resolve(self, rev: str) -> str | None:
        return self.refs.get(rev) or (rev if rev in self.commits else None)


class FakeHub:
    def __init__(self):
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []
        # fault injection: path prefix -> "500" (answer Internal Server Error) or "truncate" (send half a file
        # under the whole file's Content-Length, then hang up)
        self.faults: dict[str, str] = {}
        # "org/name/path" -> the size the listings give for that file (None: no size), whatever is served
        self.listed_sizes: dict[str, int | None] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def add_folder(self, repo_id: str, folder: Path, private: bool = False) -> str:
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in Path(folder).rglob("*") if p.is_file()}
        return self.add_files(repo_id, files, private)

    def add_files(self, repo_id: str, files: dict[str, bytes], private: bool = False) -> str:
        repo = self.repos.setdefault(repo_id, Repo(private=private))
        return repo.commit(files)


def _handler(hub: FakeHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        # -- helpers ---------------------------------------------------------------------
        def _send(self, code: int, body: bytes = b"", headers: dict | None = None, head: bool = False):
            self.send_response(code)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _json(self, code: int, obj, headers: dict | None = None):
            self._send(code, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})})

        def _error(self, code: int, error_code: str | None, message: str, head: bool = False):
            headers = {"X-Error-Message": message, "Content-Type": "application/json"}
            if error_code:
                headers["X-Error-Code"] = error_code
            self._send(code, json.dumps({"error": message}).encode(), headers, head)

        def _authorized(self) -> bool:
            return self.headers.get("Authorization") == f"Bearer {TOKEN}"

        def _repo(self, repo_id: str, head: bool = False) -> Repo | None:
            repo = hub.repos.get(repo_id)
            if repo is None or (repo.private and not self._authorized()):
                if repo is not None:  # what the Hub answers an anonymous caller of a private repo
                    self._error(401, None, "Unauthorized", head)
                else:
                    self._error(404, "RepoNotFound", "Repository not found", head)
                return None
            return repo

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))

        # -- routes ----------------------------------------------------------------------
        def do_HEAD(self):
            self._get(head=True)

        def do_GET(self):
            self._get(head=False)

        def _size(self, repo_id: str, path: str, data: bytes) -> dict:
            size = hub.listed_sizes.get(f"{repo_id}/{path}", len(data))
            return {} if size is None else {"size": size}

        def _get(self, head: bool):
            url = urlsplit(self.path)
            path = unquote(url.path)
            hub.requests.append(("HEAD" if head else "GET", path))
            fault = next((kind for prefix, kind in hub.faults.items() if path.startswith(prefix)), None)
            if fault == "500":
                return self._error(500, None, "Internal Server Error", head)
            parts = path.strip("/").split("/")
            if parts[:2] == ["api", "models"] and len(parts) >= 4:
                repo_id = "/".join(parts[2:4])
                repo = self._repo(repo_id)
                if repo is None:
                    return
                rest = parts[4:]
                rev = rest[1] if len(rest) >= 2 and rest[0] in ("revision", "tree") else "main"
                sha = repo.resolve(rev)
                if sha is None:
                    return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
                files = repo.commits[sha]
                blobs = parse_qs(url.query).get("blobs", [""])[0].lower() == "true"
                if rest and rest[0] == "tree":
                    return self._json(
                        200,
                        [
                            {"type": "file", "path": p, **self._size(repo_id, p, b), "oid": hashlib.sha1(b).hexdigest()}
                            for p, b in sorted(files.items())
                        ],
                    )
                return self._json(
                    200,
                    {
                        "id": repo_id,
                        "modelId": repo_id,
                        "sha": sha,
                        "private": repo.private,
                        "siblings": [
                            {"rfilename": p, **(self._size(repo_id, p, b) if blobs else {})}
                            for p, b in sorted(files.items())
                        ],
                    },
                )
            if len(parts) >= 5 and parts[2] == "resolve":
                repo_id, rev, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
                repo = self._repo(repo_id, head)
                if repo is None:
                    return
                sha = repo.resolve(rev)
                if sha is None:
                    return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", head)
                data = repo.commits[sha].get(filename)
                if data is None:
                    return self._error(404, "EntryNotFound", f"{filename} does not exist", head)
                etag = '"' + hashlib.sha256(data).hexdigest() + '"'
                if fault == "truncate" and not head:
                    self.send_response(200)
                    for k, v in {"X-Repo-Commit": sha, "ETag": etag, "Content-Length": str(len(data))}.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.close_connection = True
                    return
                return self._send(
                    200, data, {"X-Repo-Commit": sha, "ETag": etag, "Content-Type": "application/octet-stream"}, head
                )
            self._error(404, None, f"no route {path}", head)

        def do_POST(self):
            path = unquote(urlsplit(self.path).path)
            hub.requests.append(("POST", path))
            body = self._body()
            parts = path.strip("/").split("/")
            if not self._authorized():
                return self._error(401, None, "Invalid credentials in Authorization header")
            if parts == ["api", "validate-yaml"]:
                return self._json(200, {"errors": [], "warnings": []})
            if parts == ["api", "repos", "create"]:
                req = json.loads(body)
                repo_id = f"{req.get('organization') or 'user'}/{req['name']}"
                if repo_id in hub.repos:
                    return self._error(409, None, "You already created this model repo")
                hub.repos[repo_id] = Repo(private=bool(req.get("private")) or req.get("visibility") == "private")
                return self._json(200, {"url": f"{hub.url}/{repo_id}", "name": repo_id})
            if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] in ("preupload", "commit"):
                repo_id, op, rev = "/".join(parts[2:4]), parts[4], parts[5]
                repo = self._repo(repo_id)
                if repo is None:
                    return
                if op == "preupload":
                    files = json.loads(body)["files"]
                    return self._json(
                        200,
                        {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]},
                    )
                new = {}
                for line in body.decode().splitlines():
                    if not line.strip():
                        continue
                    item = json.loads(line)
                    if item["key"] == "file":
                        v = item["value"]
                        new[v["path"]] = base64.b64decode(v["content"])
                    elif item["key"] in ("lfsFile", "deletedFile", "deletedFolder"):
                        return self._error(400, None, f"the local hub does not take {item['key']}")
                sha = repo.commit(new, branch=rev)
                return self._json(
                    200, {"commitUrl": f"{hub.url}/{repo_id}/commit/{sha}", "commitOid": sha, "success": True}
                )
            self._error(404, None, f"no route {path}")

    return Handler
