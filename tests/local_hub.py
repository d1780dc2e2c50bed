"""A Hugging Face Hub endpoint on 127.0.0.1 that stands in for the Hub in tests (no test machine reaches the Hub).

It speaks the part of the Hub's HTTP API that huggingface_hub 2.x really uses to push and pull a model:
whoami, create_repo, repo info, the file tree and paths-info listings, preupload, the ndjson commit, YAML
validation of a README, and HEAD/GET downloads through /{repo_id}/resolve/{revision}/{path} with the headers
hf_hub_download relies on (X-Repo-Commit, ETag, Content-Length, X-Error-Code on a 404).

Uploads take the two paths the real Hub offers a client without hf_xet: preupload answers uploadMode "lfs" for
weights and other binary files (as the Hub's .gitattributes and binary detection do), "regular" for text. A regular
file goes base64-encoded inside the commit; an LFS file goes through the LFS batch API
({repo}.git/info/lfs/objects/batch, basic transfer: one PUT of the bytes, then a verify POST), and the commit names
it by sha256 (an lfsFile line), which must match what was uploaded. `LocalHub.lfs_uploads` records the paths whose
bytes came that way. The fixture sets HF_HUB_DISABLE_XET, so an installed hf_xet does not take the Xet path, which
needs a storage server this stand-in is not.

Repos live in memory as immutable snapshots (one dict path -> bytes per commit), so revisions by commit hash
keep working after later commits. Tokens are checked: only `LocalHub.token` may write, private repos need it to
be read, and a wrong token gets the Hub's 401 — so a test that passes shows the token really travelled.

Use it with the module-scoped `local_hub` fixture (import it into a test module or conftest: `from local_hub
import local_hub`), which points this process's huggingface_hub at the server and gives `local_hub.env` for
subprocesses. huggingface_hub reads HF_ENDPOINT once at import, so a subprocess needs the variable in its
environment, and this process needs its constants patched (`use_endpoint`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import yaml

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}


# What the Hub stores through LFS: its default .gitattributes patterns for weights, and any binary content.
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".npz", ".pkl", ".png", ".jpg", ".gif")
LFS_THRESHOLD = 10 * 1024 * 1024


def wants_lfs(path: str, sample: bytes, size: int) -> bool:
    return path.endswith(LFS_SUFFIXES) or b"\0" in sample or size > LFS_THRESHOLD


def git_blob_sha1(data: bytes) -> str:
    """The object id git (and the Hub) gives a regular file: sha1 over a 'blob <size>\\0' header and the bytes."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Commit:
    oid: str
    message: str
    files: dict[str, bytes]  # a full snapshot of the repo at this commit
    created_at: float
    lfs: frozenset[str] = frozenset()  # the paths stored through LFS

    def entry(self, path: str) -> dict:
        return _file_entry(path, self.files[path], path in self.lfs)


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created_at: float
    branches: dict[str, str] = field(default_factory=dict)  # branch name -> commit oid
    commits: dict[str, Commit] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        oid = self.branches.get(revision, revision)
        return self.commits.get(oid)


class HubError(Exception):
    """An HTTP error answered the way the Hub answers it (status, X-Error-Code, message)."""

    def __init__(self, status: int, message: str, error_code: str | None = None, headers: dict | None = None,
                 body: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.error_code, self.headers = status, message, error_code, headers or {}
        self.body = {"error": message, **(body or {})}


class LocalHub:
    """The server and its in-memory repos. `with LocalHub() as hub:` serves on a free port in a daemon thread."""

    def __init__(self, user: str = "local-user", token: str = "hf_local_hub_test_token"):
        self.user, self.token = user, token
        self.repos: dict[tuple[str, str], Repo] = {}
        self.unhandled: list[str] = []  # requests outside the supported API, for a test to report
        self.lfs_objects: dict[str, bytes] = {}  # sha256 -> bytes, as uploaded through the LFS batch API
        self.lfs_uploads: list[tuple[str, str]] = []  # (repo_id, path) of every file a commit took from LFS
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "LocalHub":
        handler = type("BoundHandler", (HubRequestHandler,), {"hub": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="local-hub", daemon=True).start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "LocalHub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def files(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> dict[str, bytes]:
        """What a repo holds at a revision: for tests to compare against what was pushed."""
        with self.lock:
            return dict(self.repos[(repo_type, repo_id)].resolve(revision).files)

    # --- the API; each method takes the parsed request and returns (status, json body) or raises HubError ---

    def whoami(self, user: str | None) -> dict:
        if user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        return {
            "type": "user",
            "id": "0" * 24,
            "name": user,
            "fullname": user,
            "orgs": [],
            "auth": {"type": "access_token", "accessToken": {"displayName": "local hub", "role": "write"}},
        }

    def create_repo(self, user: str | None, payload: dict) -> dict:
        repo_type = payload.get("type") or "model"
        namespace = payload.get("organization") or user
        self._check_can_write(user, namespace)
        repo_id = f"{namespace}/{payload['name']}"
        url = f"{self.url}/{URL_PREFIXES[repo_type]}{repo_id}"
        with self.lock:
            if (repo_type, repo_id) in self.repos:
                # The Hub sends the url with the 409: create_repo(exist_ok=True) returns it.
                raise HubError(409, f"You already created this {repo_type} repo", body={"url": url})
            now = time.time()
            repo = Repo(repo_type, repo_id, private=payload.get("visibility", "public") != "public", created_at=now)
            first = Commit(_commit_oid(None, "initial commit", {}), "initial commit", {}, now)
            repo.commits[first.oid], repo.branches["main"] = first, first.oid
            self.repos[(repo_type, repo_id)] = repo
        return {"url": url, "name": repo_id, "id": hashlib.sha1(repo_id.encode()).hexdigest()[:24]}

    def repo_info(self, repo: Repo, revision: str, query: dict) -> dict:
        commit = self._resolve(repo, revision)
        namespace = repo.repo_id.split("/")[0]
        with_blobs = query.get("blobs", ["false"])[0].lower() == "true"
        siblings = []
        for path, data in sorted(commit.files.items()):
            sibling = {"rfilename": path}
            if with_blobs:
                sibling.update(size=len(data), blobId=git_blob_sha1(data))
            siblings.append(sibling)
        card_data = _readme_metadata(commit.files.get("README.md"))
        return {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": namespace,
            "sha": commit.oid,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": card_data.get("tags", []),
            "library_name": card_data.get("library_name"),
            "pipeline_tag": card_data.get("pipeline_tag"),
            "cardData": card_data or None,
            "siblings": siblings,
            "createdAt": _iso(repo.created_at),
            "lastModified": _iso(commit.created_at),
        }

    def tree(self, repo: Repo, revision: str, path: str, query: dict) -> list[dict]:
        commit = self._resolve(repo, revision)
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        prefix = f"{path}/" if path else ""
        if path and not any(p.startswith(prefix) for p in commit.files):
            raise HubError(404, f"{path} is not a folder at {revision}", "EntryNotFound")
        entries: dict[str, dict] = {}
        for file_path in sorted(commit.files):
            if not file_path.startswith(prefix):
                continue
            parts = file_path[len(prefix):].split("/")
            for depth in range(1, len(parts)):  # the folders on the way down
                if depth > 1 and not recursive:
                    break
                folder = prefix + "/".join(parts[:depth])
                entries.setdefault(folder, _folder_entry(folder, commit.files))
            if recursive or len(parts) == 1:
                entries[file_path] = commit.entry(file_path)
        return list(entries.values())

    def paths_info(self, repo: Repo, revision: str, paths: list[str]) -> list[dict]:
        commit = self._resolve(repo, revision)
        found = []
        for path in paths:
            path = path.strip("/")
            if path in commit.files:
                found.append(commit.entry(path))
            elif any(p.startswith(path + "/") for p in commit.files):
                found.append(_folder_entry(path, commit.files))
        return found

    def preupload(self, user, repo: Repo, revision: str, payload: dict, query: dict) -> dict:
        self._check_can_write(user, repo.repo_id.split("/")[0])
        self._reject_pull_requests(query)
        commit = self._resolve(repo, revision)
        answers = []
        for file in payload["files"]:
            existing = commit.files.get(file["path"])
            lfs = wants_lfs(file["path"], base64.b64decode(file.get("sample", "")), int(file.get("size", 0)))
            answers.append({
                "path": file["path"],
                "uploadMode": "lfs" if lfs else "regular",
                "shouldIgnore": False,
                "oid": git_blob_sha1(existing) if existing is not None else None,
            })
        return {"files": answers, "commitOid": commit.oid}

    def commit(self, user, repo: Repo, revision: str, ndjson: bytes, query: dict) -> dict:
        self._check_can_write(user, repo.repo_id.split("/")[0])
        self._reject_pull_requests(query)
        lines = [json.loads(line) for line in ndjson.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "a commit payload starts with a header line")
        header = lines[0]["value"]
        with self.lock:
            if revision not in repo.branches:
                raise HubError(404, f"Invalid rev id: {revision} (commits go to a branch)", "RevisionNotFound")
            parent = repo.commits[repo.branches[revision]]
            if header.get("parentCommit") and not parent.oid.startswith(header["parentCommit"]):
                raise HubError(412, f"parentCommit {header['parentCommit']} is not the head of {revision}")
            files, lfs = dict(parent.files), set(parent.lfs)
            taken_from_lfs = []
            for line in lines[1:]:
                key, value = line["key"], line["value"]
                if key == "file":
                    files[value["path"]] = base64.b64decode(value["content"])
                    lfs.discard(value["path"])
                elif key == "lfsFile":
                    data = self.lfs_objects.get(value["oid"])
                    if data is None or value.get("algo", "sha256") != "sha256":
                        raise HubError(400, f"LFS object {value['oid']} of {value['path']} was never uploaded")
                    files[value["path"]] = data
                    lfs.add(value["path"])
                    taken_from_lfs.append((repo.repo_id, value["path"]))
                elif key == "deletedFile":
                    if files.pop(value["path"], None) is None:
                        raise HubError(404, f"A file with this name doesn't exist: {value['path']}", "EntryNotFound")
                elif key == "deletedFolder":
                    for path in [p for p in files if p.startswith(value["path"].rstrip("/") + "/")]:
                        del files[path]
                else:
                    raise HubError(400, f"commit operation {key!r} is not supported by the local hub")
            message = header["summary"] + ("\n\n" + header["description"] if header.get("description") else "")
            new = Commit(_commit_oid(parent.oid, message, files), message, files, time.time(), frozenset(lfs & set(files)))
            self.lfs_uploads += taken_from_lfs
            repo.commits[new.oid], repo.branches[revision] = new, new.oid
        prefix = URL_PREFIXES[repo.repo_type]
        return {"success": True, "commitOid": new.oid, "commitUrl": f"{self.url}/{prefix}{repo.repo_id}/commit/{new.oid}",
                "pullRequestUrl": None}

    def lfs_batch(self, user, repo: Repo, payload: dict) -> dict:
        """The LFS batch API, basic transfer: where to PUT each object not stored yet, and where to verify it."""
        self._check_can_write(user, repo.repo_id.split("/")[0])
        if payload.get("operation") != "upload" or "basic" not in payload.get("transfers", ["basic"]):
            raise HubError(400, "the local hub's LFS batch API takes uploads by basic transfer")
        objects = []
        for item in payload["objects"]:
            answer = {"oid": item["oid"], "size": item["size"], "authenticated": True}
            if item["oid"] not in self.lfs_objects:
                answer["actions"] = {"upload": {"href": f"{self.url}/lfs-storage/{item['oid']}?size={item['size']}"},
                                     "verify": {"href": f"{self.url}/lfs-verify/{item['oid']}"}}
            objects.append(answer)
        return {"transfer": "basic", "objects": objects}

    def lfs_store(self, oid: str, query: dict, data: bytes) -> dict:
        """The storage server's PUT: the bytes must hash to the oid the batch call announced."""
        if hashlib.sha256(data).hexdigest() != oid or len(data) != int(query.get("size", ["-1"])[0]):
            raise HubError(400, f"the uploaded bytes do not match LFS object {oid}")
        with self.lock:
            self.lfs_objects[oid] = data
        return {}

    def lfs_verify(self, user, oid: str, payload: dict) -> dict:
        if user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        if len(self.lfs_objects.get(oid, b"")) != payload.get("size") or payload.get("oid") != oid:
            raise HubError(404, f"LFS object {oid} is not stored")
        return {}

    def validate_yaml(self, payload: dict) -> dict:
        """The checks the Hub makes that matter here: the front matter parses, is a mapping, has a valid model-index."""
        from huggingface_hub.repocard_data import model_index_to_eval_results

        content = payload.get("content", "")
        try:
            metadata = _readme_metadata(content.encode(), strict=True)
        except (yaml.YAMLError, ValueError) as error:
            raise HubError(400, f"Invalid YAML in README.md: {error}")
        if "model-index" in metadata:
            try:
                model_index_to_eval_results(metadata["model-index"])
            except (KeyError, TypeError, IndexError) as error:
                raise HubError(400, f"Invalid model-index: missing or malformed {error}")
        return {"errors": [], "warnings": []}

    def resolve(self, repo: Repo, revision: str, path: str) -> tuple[bytes, dict]:
        commit = self._resolve(repo, revision)
        headers = {"X-Repo-Commit": commit.oid}
        if path not in commit.files:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", headers)
        data = commit.files[path]
        if path in commit.lfs:  # the Hub names an LFS file by its sha256, as its size, in X-Linked-* headers
            headers.update({"X-Linked-Etag": f'"{hashlib.sha256(data).hexdigest()}"', "X-Linked-Size": str(len(data))})
        etag = f'"{git_blob_sha1(data)}"'
        return data, {**headers, "ETag": etag, "Content-Type": "application/octet-stream", "Accept-Ranges": "bytes",
                      "Last-Modified": formatdate(commit.created_at, usegmt=True)}

    # --- helpers ---

    def find_repo(self, user: str | None, repo_type: str, repo_id: str) -> Repo:
        with self.lock:
            repo = self.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and user != repo.repo_id.split("/")[0]):
            # The Hub answers a private repo without the right token exactly like a missing one.
            raise HubError(401 if repo else 404, f"Repository Not Found for {repo_type} {repo_id}", "RepoNotFound")
        return repo

    def user_for(self, authorization: str | None) -> str | None:
        if not authorization:
            return None
        if authorization.removeprefix("Bearer ").strip() != self.token:
            raise HubError(401, "Invalid credentials in Authorization header")
        return self.user

    def _check_can_write(self, user: str | None, namespace: str) -> None:
        if user is None:
            raise HubError(401, "You must be authenticated to write to the Hub (no token was sent)")
        if namespace != user:
            raise HubError(403, f"You don't have the rights to write to the namespace {namespace!r}")

    def _reject_pull_requests(self, query: dict) -> None:
        if query.get("create_pr"):
            raise HubError(400, "pull requests are not supported by the local hub")

    def _resolve(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit


class HubRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects
    hub: LocalHub  # set on the subclass that LocalHub.start builds

    def log_message(self, format, *args) -> None:  # quiet: pytest shows failures, not every request
        pass

    def do_HEAD(self) -> None:
        self._dispatch(send_body=False)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:  # the LFS storage upload only
        self._dispatch()

    def _dispatch(self, send_body: bool = True) -> None:
        split = urlsplit(self.path)
        parts = [unquote(p) for p in split.path.strip("/").split("/")]
        query = parse_qs(split.query)
        body = self._read_body()
        try:
            user = self.hub.user_for(self.headers.get("Authorization"))
            if parts[0] == "api":
                self._send_json(200, self._api(user, parts[1:], query, body))
            elif self.command == "PUT" and len(parts) == 2 and parts[0] == "lfs-storage":
                self._send_json(200, self.hub.lfs_store(parts[1], query, body))
            elif self.command == "POST" and len(parts) == 2 and parts[0] == "lfs-verify":
                self._send_json(200, self.hub.lfs_verify(user, parts[1], json.loads(body)))
            elif self.command == "POST" and parts[-4:] == ["info", "lfs", "objects", "batch"] and parts[-5].endswith(".git"):
                repo_type = REPO_TYPES[parts[0]] if parts[0] in ("datasets", "spaces") else "model"
                name = "/".join(parts[-6:-4])[: -len(".git")]
                repo = self.hub.find_repo(user, repo_type, name)
                self._send_json(200, self.hub.lfs_batch(user, repo, json.loads(body)))
            elif self.command in ("GET", "HEAD"):
                data, headers = self._download(user, parts)
                self._send_file(data, headers, send_body)
            else:
                self._unhandled()
        except HubError as error:
            headers = {**error.headers, "X-Error-Message": error.message}
            if error.error_code:
                headers["X-Error-Code"] = error.error_code
            self._send_json(error.status, error.body, headers, send_body)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":  # a streamed upload comes in chunks
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip(), 16)
            chunk = self.rfile.read(size)
            self.rfile.readline()  # the CRLF after each chunk
            if size == 0:
                return b"".join(chunks)
            chunks.append(chunk)

    def _api(self, user, route: list[str], query: dict, body: bytes):
        """/api/... : `route` is the path after /api, split on '/' and unquoted."""
        hub, method = self.hub, self.command
        if method == "GET" and route == ["whoami-v2"]:
            return hub.whoami(user)
        if method == "GET" and route == ["agent-harnesses"]:  # huggingface_hub's user-agent telemetry
            return {"standardEnvVars": [], "harnesses": {}}
        if method == "POST" and route == ["repos", "create"]:
            return hub.create_repo(user, json.loads(body))
        if method == "POST" and route == ["validate-yaml"]:
            return hub.validate_yaml(json.loads(body))
        if len(route) < 3 or route[0] not in REPO_TYPES:
            return self._unhandled()
        repo = hub.find_repo(user, REPO_TYPES[route[0]], f"{route[1]}/{route[2]}")
        action, rest = (route[3], route[4:]) if len(route) > 3 else (None, [])
        if method == "GET" and action is None:
            return hub.repo_info(repo, "main", query)
        if method == "GET" and action == "revision" and len(rest) == 1:
            return hub.repo_info(repo, rest[0], query)
        if method == "GET" and action == "tree" and rest:
            return hub.tree(repo, rest[0], "/".join(rest[1:]), query)
        if method == "POST" and action == "paths-info" and len(rest) == 1:
            return hub.paths_info(repo, rest[0], parse_qs(body.decode()).get("paths", []))
        if method == "POST" and action == "preupload" and len(rest) == 1:
            return hub.preupload(user, repo, rest[0], json.loads(body), query)
        if method == "POST" and action == "commit" and len(rest) == 1:
            return hub.commit(user, repo, rest[0], body, query)
        return self._unhandled()

    def _download(self, user, parts: list[str]) -> tuple[bytes, dict]:
        """/{repo_id}/resolve/{revision}/{path}, with datasets/ or spaces/ before the repo id for those types."""
        repo_type = "model"
        if parts[0] in ("datasets", "spaces"):
            repo_type, parts = REPO_TYPES[parts[0]], parts[1:]
        if len(parts) < 5 or parts[2] != "resolve":
            return self._unhandled()
        repo = self.hub.find_repo(user, repo_type, f"{parts[0]}/{parts[1]}")
        return self.hub.resolve(repo, parts[3], "/".join(parts[4:]))

    def _unhandled(self):
        self.hub.unhandled.append(f"{self.command} {self.path}")
        raise HubError(404, f"the local hub does not implement {self.command} {urlsplit(self.path).path}")

    def _send_json(self, status: int, payload, headers: dict | None = None, send_body: bool = True) -> None:
        self._send(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})},
                   send_body)

    def _send_file(self, data: bytes, headers: dict, send_body: bool) -> None:
        ranged = self.headers.get("Range", "").removeprefix("bytes=")
        if ranged and send_body:  # huggingface_hub resumes an interrupted download with "Range: bytes=N-"
            start = int(ranged.split("-")[0])
            headers = {**headers, "Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
            self._send(206, data[start:], headers, send_body)
        else:
            self._send(200, data, headers, send_body)

    def _send(self, status: int, data: bytes, headers: dict, send_body: bool) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if send_body:
            self.wfile.write(data)


def _commit_oid(parent: str | None, message: str, files: dict[str, bytes]) -> str:
    tree = "\n".join(f"{git_blob_sha1(data)} {path}" for path, data in sorted(files.items()))
    return hashlib.sha1(f"{parent}\n{message}\n{tree}\n{time.time_ns()}".encode()).hexdigest()


def _file_entry(path: str, data: bytes, lfs: bool = False) -> dict:
    entry = _plain_file_entry(path, data)
    if lfs:  # the Hub lists an LFS file's sha256 and the size of its pointer file
        entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
    return entry


def _plain_file_entry(path: str, data: bytes) -> dict:
    return {"type": "file", "oid": git_blob_sha1(data), "size": len(data), "path": path}


def _folder_entry(folder: str, files: dict[str, bytes]) -> dict:
    inside = "\n".join(f"{git_blob_sha1(d)} {p}" for p, d in sorted(files.items()) if p.startswith(folder + "/"))
    return {"type": "directory", "oid": hashlib.sha1(inside.encode()).hexdigest(), "size": 0, "path": folder}


def _readme_metadata(readme: bytes | None, strict: bool = False) -> dict:
    """The YAML front matter of a README (between the leading '---' lines), as the Hub reads it into cardData."""
    if not readme:
        return {}
    text = readme.decode()
    if not text.startswith("---"):
        return {}
    front, separator, _ = text[3:].partition("\n---")
    if not separator:
        if strict:
            raise ValueError("the README's YAML front matter has no closing '---' line")
        return {}
    metadata = yaml.safe_load(front) or {}
    if not isinstance(metadata, dict):
        if strict:
            raise ValueError("the README's YAML front matter is not a mapping")
        return {}
    return metadata


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(timestamp))


@contextmanager
def use_endpoint(url: str) -> Iterator[None]:
    """Point this process's huggingface_hub at `url` for the duration (it read HF_ENDPOINT once, at import)."""
    from huggingface_hub import constants, hf_api

    saved = constants.ENDPOINT, constants.HUGGINGFACE_CO_URL_TEMPLATE, hf_api.api.endpoint
    constants.ENDPOINT = url
    constants.HUGGINGFACE_CO_URL_TEMPLATE = url + "/{repo_id}/resolve/{revision}/{filename}"
    hf_api.api.endpoint = url  # the module-level HfApi behind huggingface_hub.create_repo, upload_folder, ...
    try:
        yield
    finally:
        constants.ENDPOINT, constants.HUGGINGFACE_CO_URL_TEMPLATE, hf_api.api.endpoint = saved


@dataclass
class LocalHubSession:
    """What a test gets from the `local_hub` fixture: the server, and the environment for a subprocess."""

    server: LocalHub
    cache_dir: Path
    env: dict[str, str]  # os.environ plus HF_ENDPOINT, HF_TOKEN, HF_HUB_CACHE: give it to subprocess.run(env=...)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def token(self) -> str:
        return self.server.token


@pytest.fixture(scope="module")
def local_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHubSession]:
    """A local hub for one test module. huggingface_hub, in this process and in subprocesses given `.env`, talks
    to it with its token and a fresh download cache: nothing a test does reaches the real Hub or the user's cache."""
    from huggingface_hub import constants

    cache_dir = tmp_path_factory.mktemp("hf-cache")
    with LocalHub() as server, pytest.MonkeyPatch.context() as monkeypatch:
        variables = {
            "HF_ENDPOINT": server.url,
            "HF_TOKEN": server.token,
            "HF_HUB_CACHE": str(cache_dir),
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_HUB_DISABLE_XET": "1",  # LFS, as the Hub takes it from clients without hf_xet; see the docstring
        }
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache_dir))
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        with use_endpoint(server.url):
            yield LocalHubSession(server, cache_dir, dict(os.environ))
        assert not server.unhandled, f"huggingface_hub called routes the local hub lacks: {server.unhandled}"
