"""Where a study's files live: a local folder or any ``pyarrow.fs`` URI (``s3://bucket/path``,
``gs://bucket/path``, ``hdfs://...``). Every file of a study (tables, claims, stages, the
experiment) is read and written through one :class:`Store`, so a trial on any node of a cluster
writes where the driver reads. No Ray here.

S3-compatible servers (MinIO, Ceph, moto) are reached the way every AWS tool is told:
``AWS_ENDPOINT_URL_S3`` (or ``AWS_ENDPOINT_URL``) and the usual credential variables, on every node.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import urllib.parse
import uuid
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.fs as pafs

from ltray.errors import LtrayError

# object stores publish an object whole when its upload completes: a direct write is atomic there,
# and their "rename" is a copy
OBJECT_STORES = ("s3", "gcs")


def is_uri(path: str) -> bool:
    return "://" in str(path)


def join(base: str, *parts: str) -> str:
    """``base/part/...`` for a local path or a URI, keeping a URI's query (``?endpoint_override=``) last."""
    if not is_uri(base):
        return os.path.join(base, *parts)
    u = urllib.parse.urlsplit(base)
    # percent-encoded (pyarrow decodes it): a study named "run#2" must not end the path at "#"
    path = "/".join([u.path.rstrip("/"), *(urllib.parse.quote(p.strip("/"), safe="") for p in parts)])
    return urllib.parse.urlunsplit((u.scheme, u.netloc, path, u.query, u.fragment))


def shown(uri: str) -> str:
    """A location fit to print: a URI without its query, where options (and keys) may sit."""
    return uri.split("?", 1)[0] if is_uri(uri) else uri


def local_folder(kind: str, uri: str) -> str:
    """``<temp>/<kind>/<key>``: this machine's folder for a study on a URI (its search working
    copy, its stage locks, the dashboard's copies), keyed by the URI and the server it reaches, so
    every process here computes the same path, and ``s3://b/x`` on a MinIO and on AWS (two
    studies) never share one."""
    blob = hashlib.sha256(f"{shown(uri)}\n{_endpoint(uri)}".encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), kind, blob)


def _endpoint(uri: str) -> str:
    """The server a URI reaches when it is not the scheme's default: the URI's ``endpoint_override``,
    else (for ``s3://``) ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``, as pyarrow reads them."""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)
    if query.get("endpoint_override"):
        return query["endpoint_override"][0]
    if uri.startswith("s3://"):
        return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or ""
    return ""


def parent(path: str) -> str:
    """The folder holding ``path`` (a local path or a URI, whose query is kept)."""
    if not is_uri(path):
        return os.path.dirname(os.path.abspath(path))
    u = urllib.parse.urlsplit(path)
    return urllib.parse.urlunsplit(u._replace(path=u.path.rstrip("/").rsplit("/", 1)[0]))


@dataclass(frozen=True)
class Store:
    """One folder (local or remote) and the filesystem that reaches it; paths are relative to it."""

    uri: str
    """The folder as the user gave it (a local path or a URI)."""
    fs: pafs.FileSystem
    root: str
    """The folder's path inside ``fs``."""

    @property
    def local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts]) if parts else self.root

    def uri_of(self, *parts: str) -> str:
        """A path (local) or URI (remote) of ``parts`` that Ray's ``storage_path`` accepts."""
        return join(self.uri, *parts)

    def kind(self, *parts: str) -> pafs.FileType:
        return self.fs.get_file_info(self.path(*parts)).type

    def exists(self, *parts: str) -> bool:
        return self.kind(*parts) != pafs.FileType.NotFound

    def is_file(self, *parts: str) -> bool:
        return self.kind(*parts) == pafs.FileType.File

    def is_dir(self, *parts: str) -> bool:
        return self.kind(*parts) == pafs.FileType.Directory

    def listdir(self, *parts: str) -> list[pafs.FileInfo]:
        """The entries of a folder (none if it does not exist), hidden ones (``.name``) left out."""
        infos = self.fs.get_file_info(pafs.FileSelector(self.path(*parts), allow_not_found=True))
        return sorted((i for i in infos if not i.base_name.startswith(".")), key=lambda i: i.path)

    def makedirs(self, *parts: str) -> None:
        self.fs.create_dir(self.path(*parts), recursive=True)

    def read_bytes(self, *parts: str) -> bytes:
        """The file's bytes; FileNotFoundError if there is none."""
        try:
            with self.fs.open_input_stream(self.path(*parts)) as f:
                return f.read()
        except (FileNotFoundError, pa.ArrowIOError) as e:
            if not self.exists(*parts):
                raise FileNotFoundError(self.uri_of(*parts)) from e
            raise

    def write_bytes(self, data: bytes, *parts: str) -> None:
        """Write a file atomically: readers see the old one or the whole new one, never a part.
        Locally (and on NFS) a temporary name then a rename; on S3 and GCS one upload. (Other
        filesystems rename as they can: HDFS replaces a file by deleting it first.)"""
        final = self.path(*parts)
        folder = final.rsplit("/", 1)[0]
        self.fs.create_dir(folder, recursive=True)
        if self.fs.type_name in OBJECT_STORES:
            with self.fs.open_output_stream(final) as out:
                out.write(data)
            return
        tmp = f"{folder}/.{final.rsplit('/', 1)[1]}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            with self.fs.open_output_stream(tmp) as out:
                out.write(data)
            self.fs.move(tmp, final)
        except BaseException:
            try:
                self.fs.delete_file(tmp)
            except (OSError, pa.ArrowException):
                pass
            raise

    def fetch(self, dest: str, *parts: str) -> None:
        """Copy the file to the local path ``dest`` atomically (two fetches may run at once)."""
        folder = os.path.dirname(os.path.abspath(dest))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(self.read_bytes(*parts))
            os.replace(tmp, dest)
        except BaseException:
            os.remove(tmp)
            raise

    def create_new(self, data: bytes, *parts: str) -> bool:
        """Create the file unless it exists; True if this call created it. Exclusive on a local or
        NFS folder (``O_EXCL``). An object store has no exclusive create: there the file is
        written when absent and read back, so two writers less than one upload and read-back apart may both win."""
        if self.local:
            os.makedirs(os.path.dirname(self.path(*parts)) or ".", exist_ok=True)
            try:
                fd = os.open(self.path(*parts), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            return True
        if self.exists(*parts):
            return False
        self.write_bytes(data, *parts)
        return self.read_bytes(*parts) == data

    def remove(self, *parts: str) -> None:
        try:
            self.fs.delete_file(self.path(*parts))
        except FileNotFoundError:
            pass

    def move(self, src: tuple[str, ...], dest: tuple[str, ...]) -> None:
        self.fs.create_dir(self.path(*dest).rsplit("/", 1)[0], recursive=True)
        self.fs.move(self.path(*src), self.path(*dest))


def open_store(uri: str) -> Store:
    """The Store of a folder or URI (cached: an S3 client resolves its bucket's region once)."""
    uri = str(uri)
    if uri.startswith("file://"):
        uri = urllib.parse.unquote(urllib.parse.urlsplit(uri).path)
    return _open(uri if is_uri(uri) else os.path.abspath(uri))  # a relative path: from today's folder


@functools.lru_cache(maxsize=64)
def _open(uri: str) -> Store:
    if not is_uri(uri):
        return Store(uri, pafs.LocalFileSystem(), uri)
    try:
        fs, root = pafs.FileSystem.from_uri(uri)
    except (pa.ArrowInvalid, ValueError, OSError) as e:
        raise LtrayError(f"cannot open results location {uri}: {e}") from None
    return Store(uri, fs, root.rstrip("/"))
