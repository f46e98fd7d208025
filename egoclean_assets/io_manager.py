"""Clip outputs under the data root, and the IO manager that stores them and deletes intermediates.

Where each file of a clip lives is `egoclean.core.layout.ClipLayout`'s to say (by factory /
worker / clip under the data root: a local folder, `file://...`, or any fsspec URL such
as `s3://bucket/prefix`). An asset writes its files at `ClipStorage.layout(clip)` (or
into `ClipStorage.output_dir(clip, asset)`) and returns a `ClipArtifact` naming them.
For a local root that folder is the final one (no copies); for a remote root it is a
local work folder, and the IO manager puts the files to the root and removes the local
copies. The manifest is written last: its presence means the
asset's files are complete.

Intermediates (`INTERMEDIATES`: raw_tar, consumed by intrinsics and rectified_clip) are
deleted only when every consuming asset has written its own output after loading the
intermediate's current generation. A consumer that fails writes nothing, so its retry
still finds the input; the deletion is recorded in the consumer's materialization
metadata (`deleted_intermediates`) and in the intermediate's manifest. Final outputs are
never deleted. Loading a deleted intermediate gives its facts (`info`, with `deleted`)
and no files; a consumer that needs the files fetches them again (rectified_clip re-reads
the raw clip from its shard), so a downstream asset can always be re-run on its own.
"""


import contextlib
import json
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import PrivateAttr
from dagster import (
    ConfigurableIOManager,
    ConfigurableResource,
    InputContext,
    MetadataValue,
    OutputContext,
    ResourceDependency,
)

from egoclean.core import atomic, defaults, jsonin
from egoclean.core.errors import IncompleteOutputError, InvalidInputError
from egoclean.core.ids import ClipId
from egoclean.core.layout import RAW_DIR, ClipLayout, clip_folder, is_local, local_path
from egoclean.core.object_store import RemoteRoot
from egoclean_assets.failures import reports_failures
from egoclean_assets.run_launcher import register_run_worker, stop_heartbeat

# intermediate asset -> the assets that consume it; it is deleted once all have succeeded.
INTERMEDIATES: dict[str, tuple[str, ...]] = {"raw_tar": ("intrinsics", "rectified_clip")}


@dataclass
class ClipArtifact:
    """What one asset produced for one clip: its files by role (local paths) and facts."""

    clip_id: str
    asset: str
    files: dict[str, str]
    info: dict[str, Any] = field(default_factory=dict)
    # set by the IO manager when the files were downloaded from a remote root
    download_dir: str | None = None
    # set by the IO manager on load: role -> where the file is stored (path or URL)
    locations: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, clip: ClipId, asset: str, result) -> "ClipArtifact":
        """The artifact of a library step's result (egoclean.*.steps: its `files` and `info()`)."""
        return cls(clip.key, asset, files=dict(result.files), info=result.info())

    def location(self, role: str) -> str:
        """Where the file with this role is stored: its path, or its URL under a remote root."""
        return self.locations.get(role) or str(self.path(role))
    # set by the IO manager on load: the local folder that holds the clip's files here
    folder: str | None = None

    @property
    def layout(self) -> ClipLayout:
        """The clip's files by artifact, in the local folder this artifact was loaded into."""
        if self.folder is None:
            raise ValueError(f"{self.asset} of {self.clip_id}: no folder (only a loaded artifact has a layout)")
        return ClipLayout(self.clip_id, self.folder)

    def path(self, role: str) -> Path:
        """The local path of the file with this role (KeyError names the roles there are)."""
        try:
            return Path(self.files[role])
        except KeyError:
            deleted = self.info.get("deleted")
            if not self.files and deleted:
                raise InvalidInputError(
                    f"{self.asset} of clip {self.clip_id} was an intermediate and has been deleted after "
                    f"{', '.join(deleted.get('after', []))} succeeded (its facts remain in .info)"
                ) from None
            raise KeyError(f"{self.asset} of {self.clip_id} has no file {role!r} (has {sorted(self.files)})") from None

    def release(self) -> None:
        """Remove downloaded copies (remote roots only; a no-op for local roots)."""
        if self.download_dir:
            shutil.rmtree(self.download_dir, ignore_errors=True)
            self.download_dir = None


class ClipStorage(ConfigurableResource):
    """Output storage by factory / worker / clip under a data root.

    data_root: a local folder (default `data`, env EGOCLEAN_DATA_ROOT), `file://...`, or any
    fsspec URL (`s3://bucket/egoclean`, `gcs://...`, `memory://...`). Remote roots are
    written with fsspec `put`; processing always happens on local files.
    work_dir: local folder for processing when the root is remote (default: a folder in the
    system temp dir, env EGOCLEAN_WORK_DIR). Unused for local roots.
    """

    data_root: str = defaults.DATA_ROOT
    work_dir: str | None = None
    retries: int = defaults.OBJECT_STORE_ATTEMPTS  # attempts per remote operation (>= 1), with backoff between them
    timeout_sec: float = defaults.OBJECT_STORE_TIMEOUT_SEC  # per remote request (connect and each read)

    def setup_for_execution(self, context) -> None:
        # Every clip step uses this resource, so the run worker says here where it runs
        # (run monitoring's health check, egoclean_assets.run_launcher).
        register_run_worker(context.instance, context.run_id)

    def teardown_after_execution(self, context) -> None:
        stop_heartbeat(context.run_id)

    @property
    def is_local(self) -> bool:
        return is_local(self.data_root)

    def _work(self) -> Path:
        return Path(self.work_dir) if self.work_dir else Path(tempfile.gettempdir()) / "egoclean-work"

    def local_clip_dir(self, clip: ClipId) -> Path:
        """The local folder an asset of this clip processes in (final folder if local)."""
        base = local_path(self.data_root) if self.is_local else self._work() / "outputs"
        return (base / clip_folder(clip)).absolute()

    def layout(self, clip: ClipId) -> ClipLayout:
        """The clip's files in the local folder its assets write to (created if missing)."""
        d = self.local_clip_dir(clip)
        d.mkdir(parents=True, exist_ok=True)
        return ClipLayout(clip.key, str(d))

    def final_layout(self, clip: ClipId) -> ClipLayout:
        """The clip's files where they end up: paths (local root) or URLs (remote root)."""
        return ClipLayout(clip.key, self.clip_url(clip))

    def output_dir(self, clip: ClipId, asset: str) -> Path:
        """Where `asset` writes its files for `clip` (intermediates in the layout's raw folder)."""
        layout = self.layout(clip)
        d = Path(layout.raw_dir if asset in INTERMEDIATES else layout.dir)
        d.mkdir(parents=True, exist_ok=True)
        return d

    def clip_url(self, clip: ClipId) -> str:
        """The clip's folder in the root, as a path (local) or URL (remote)."""
        if self.is_local:
            return str(self.local_clip_dir(clip))
        return ClipLayout.under(self.data_root, clip).dir

    def location(self, clip: ClipId, local_path: str | os.PathLike) -> str:
        """Where a file written into the clip's local folder ends up (path or URL)."""
        rel = Path(local_path).absolute().relative_to(self.local_clip_dir(clip)).as_posix()
        return self.final_layout(clip).path(rel)

    def remote(self):
        """The remote root with this resource's retries and timeout (egoclean.core.object_store)."""
        return RemoteRoot(self.data_root, retries=self.retries, timeout_sec=self.timeout_sec)

    def fs(self):
        """The fsspec filesystem of a remote root (egoclean.core.object_store.RemoteRoot.fs)."""
        return self.remote().fs()

    def _remote(self, what: str, op):
        """Run one remote operation with bounded retries (egoclean.core.object_store.RemoteRoot.call)."""
        return self.remote().call(what, op)

    # -- manifests ---------------------------------------------------------------------
    def _manifest_loc(self, clip: ClipId, asset: str) -> str:
        return self.final_layout(clip).manifest(asset)

    def read_manifest(self, clip: ClipId, asset: str) -> dict | None:
        """The manifest `asset` wrote for `clip`, or None when it has not been written."""
        loc = self._manifest_loc(clip, asset)
        if self.is_local:
            p = Path(loc)
            data = p.read_bytes() if p.is_file() else None
        else:
            fs = self.fs()

            def read():
                try:
                    return fs.cat_file(loc)
                except FileNotFoundError:
                    return None

            data = self._remote(f"reading {loc}", read)
        if data is None:
            return None
        what = f"manifest {loc} ({asset} of clip {clip.key})"
        m = jsonin.loads(data, what)
        if not isinstance(m, dict) or not isinstance(m.get("files"), dict) or "generation" not in m:
            raise InvalidInputError(f"{what}: not an EgoClean manifest (damaged?); re-materialize {asset}")
        return m

    def write_manifest(self, clip: ClipId, asset: str, manifest: dict) -> None:
        loc = self._manifest_loc(clip, asset)
        if self.is_local:
            atomic.write_json(loc, manifest)
        else:
            data = (json.dumps(manifest, indent=2) + "\n").encode()
            fs = self.fs()
            self._remote(f"writing {loc}", lambda: fs.pipe_file(loc, data))

    # -- files -------------------------------------------------------------------------
    def publish(self, clip: ClipId, files: dict[str, str]) -> dict[str, str]:
        """Make `files` (local, inside the clip's folder) final; returns role -> relative path."""
        return self.publish_checked(clip, files)[0]

    def publish_checked(self, clip: ClipId, files: dict[str, str]) -> tuple[dict[str, str], dict[str, dict]]:
        """As `publish`, and the files' sizes and SHA-256 for the manifest (`file_checks`)."""
        base = self.local_clip_dir(clip)
        rel: dict[str, str] = {}
        for role, p in files.items():
            p = Path(p).absolute()
            try:
                rel[role] = p.relative_to(base).as_posix()
            except ValueError:
                raise InvalidInputError(
                    f"output {role!r} of clip {clip.key} is at {p}, outside its folder {base}"
                ) from None
            if not p.is_file():
                raise InvalidInputError(f"output {role!r} of clip {clip.key}: {p} does not exist")
        # measured before uploading: a remote root's local copies go once uploaded
        checks = file_checks(files, rel)
        if not self.is_local:
            fs = self.fs()
            try:
                for r in rel.values():
                    self.remote().put(base / r, self.final_layout(clip).path(r), fs=fs)
            finally:
                # the local copies go either way: a failed step recomputes them, and the
                # work folder holds only what running steps need
                for r in rel.values():
                    (base / r).unlink(missing_ok=True)
        return rel, checks

    def delete(self, clip: ClipId, rel_paths: list[str]) -> list[str]:
        """Delete files of the clip's folder; returns their locations (paths or URLs)."""
        done = []
        for r in rel_paths:
            loc = self.final_layout(clip).path(r)
            if self.is_local:
                p = Path(loc)
                # another run of the same clip may be deleting the same files right now
                try:
                    p.unlink()
                    done.append(loc)
                except FileNotFoundError:
                    pass
                if p.parent.name == RAW_DIR:
                    # an emptied raw/ folder goes too, so only final outputs remain; one
                    # that is not empty (or already gone) is left alone
                    with contextlib.suppress(OSError):
                        p.parent.rmdir()
            else:
                fs = self.fs()

                def rm(fs=fs, loc=loc):
                    # a missing key: another run of the same clip deleted it first
                    if not fs.exists(loc):
                        return False
                    with contextlib.suppress(FileNotFoundError):
                        fs.rm_file(loc)
                    return True

                if self._remote(f"deleting {loc}", rm):
                    done.append(loc)
        return done

    def fetch(self, clip: ClipId, rel_paths: dict[str, str], into: Path, checks: dict | None = None,
              asset: str = "") -> dict[str, str]:
        """Local paths of the files: in place for local roots, else downloaded into `into`.

        With `checks` (the manifest's size and SHA-256 per file) every file must match:
        a re-materialization that failed half-way (some new files beside old ones under
        the old manifest) is refused, not read as whole."""
        final = self.final_layout(clip)
        if self.is_local:
            base = self.local_clip_dir(clip)
            out = {role: str(base / r) for role, r in rel_paths.items()}
        else:
            fs = self.fs()
            out = {}
            for role, r in rel_paths.items():
                dest = into / r
                dest.parent.mkdir(parents=True, exist_ok=True)
                try:
                    self.remote().get(final.path(r), dest, fs=fs)
                except FileNotFoundError:
                    pass  # reported below with the other missing files
                out[role] = str(dest)
        missing = [final.path(rel_paths[role]) for role, p in out.items() if not Path(p).is_file()]
        if missing:
            raise InvalidInputError(f"clip {clip.key}: stored output file(s) missing: {', '.join(missing)}")
        for role, r in rel_paths.items():
            want = (checks or {}).get(r)
            if want is None:
                continue  # a manifest written before files were checked
            p = Path(out[role])
            got = {"bytes": p.stat().st_size, "sha256": atomic.sha256_file(p)}
            if got != want:
                raise IncompleteOutputError(
                    f"{asset or 'output'} of clip {clip.key}: {final.path(r)} is not the file its manifest records "
                    f"({got['bytes']} bytes, sha256 {got['sha256'][:12]}…; the manifest says {want.get('bytes')} "
                    f"bytes, {str(want.get('sha256'))[:12]}…): an update of it failed half-way; "
                    f"re-materialize {asset or 'it'} for {clip.key}"
                )
        return out

    def step_download_dir(self, run_id: str, step_key: str) -> Path:
        """Where one step's inputs are downloaded (remote roots only)."""
        return self._work() / "inputs" / run_id / step_key

    def prune_downloads(self, is_finished) -> None:
        """Remove download folders of runs that have finished (a failed step's leftovers)."""
        root = self._work() / "inputs"
        try:
            run_dirs = list(root.iterdir())
        except OSError:  # nothing downloaded yet (or removed meanwhile)
            return
        for run_dir in run_dirs:
            if is_finished(run_dir.name):
                shutil.rmtree(run_dir, ignore_errors=True)


def file_checks(local_files: dict[str, str | os.PathLike], rel_files: dict[str, str]) -> dict[str, dict]:
    """Size and SHA-256 of each file (role -> local path), keyed by its path in the clip's folder.

    Recorded in the manifest, so a reader can tell a set of files from a mix of two
    generations (ClipStorage.fetch)."""
    return {rel_files[role]: {"bytes": Path(p).stat().st_size, "sha256": atomic.sha256_file(p)}
            for role, p in local_files.items()}


def new_manifest(clip: ClipId, asset: str, run_id: str, rel_files: dict[str, str], info: dict,
                 consumed: dict | None = None, checks: dict | None = None) -> dict:
    """The manifest of one asset's output for one clip (a new generation)."""
    return {
        "asset": asset,
        "clip_id": clip.key,
        "intermediate": asset in INTERMEDIATES,
        "generation": uuid.uuid4().hex,
        "run_id": run_id,
        "written_at": time.time(),
        "files": rel_files,
        "checks": checks or {},
        "info": info,
        "consumed": consumed or {},
    }


def _asset_name(context) -> str:
    return context.asset_key.path[-1]


class ClipIOManager(ConfigurableIOManager):
    """Stores ClipArtifacts under ClipStorage and deletes intermediates once consumed."""

    storage: ResourceDependency[ClipStorage]
    # (run, step, clip, intermediate) -> the generation that step loaded: a consumer
    # vouches only for the version it actually read, even if a concurrent run of the
    # same clip rewrote the intermediate meanwhile.
    _loaded: dict = PrivateAttr(default_factory=dict)

    @reports_failures  # a missing input or a failed publish fails the step with its one line first
    def handle_output(self, context: OutputContext, obj: ClipArtifact) -> None:
        if not isinstance(obj, ClipArtifact):
            raise InvalidInputError(
                f"{context.asset_key.to_user_string()}: expected a ClipArtifact, got {type(obj).__name__}"
            )
        clip = ClipId.parse(context.partition_key)
        asset = _asset_name(context)
        storage = self.storage
        rel, checks = storage.publish_checked(clip, obj.files)

        consumed = {}
        for inter, consumers in INTERMEDIATES.items():
            if asset in consumers:
                gen = self._loaded.pop((context.run_id, context.step_key, clip.key, inter), None)
                if gen is None:  # not recorded (another process loaded it): the current one
                    m = storage.read_manifest(clip, inter)
                    gen = m["generation"] if m is not None else None
                if gen is not None:
                    consumed[inter] = gen
        storage.write_manifest(clip, asset, new_manifest(clip, asset, context.run_id, rel, obj.info, consumed, checks))
        meta: dict[str, Any] = {"location": MetadataValue.path(storage.clip_url(clip))}

        deleted = []
        for inter in consumed:
            deleted += self._delete_if_consumed(clip, inter)
        if deleted:
            meta["deleted_intermediates"] = MetadataValue.json(deleted)
            context.log.info(f"deleted intermediates of {clip.key}: {', '.join(deleted)}")
        context.add_output_metadata(meta)
        if not storage.is_local:
            # the step's downloaded inputs are no longer needed once its output is stored
            shutil.rmtree(storage.step_download_dir(context.run_id, context.step_key), ignore_errors=True)

    def _delete_if_consumed(self, clip: ClipId, inter: str) -> list[str]:
        storage = self.storage
        m = storage.read_manifest(clip, inter)
        if m is None or not m.get("files"):
            return []
        gen = m["generation"]
        for consumer in INTERMEDIATES[inter]:
            cm = storage.read_manifest(clip, consumer)
            if cm is None or cm.get("consumed", {}).get(inter) != gen:
                return []
        deleted = storage.delete(clip, list(m["files"].values()))
        m["deleted"] = {"files": m["files"], "at": time.time(), "after": list(INTERMEDIATES[inter])}
        m["files"] = {}
        storage.write_manifest(clip, inter, m)
        return deleted

    @reports_failures
    def load_input(self, context: InputContext) -> ClipArtifact:
        clip = ClipId.parse(context.asset_partition_key)
        asset = _asset_name(context)
        storage = self.storage
        m = storage.read_manifest(clip, asset)
        if m is None:
            raise InvalidInputError(
                f"{asset} of clip {clip.key} has not been materialized (no manifest under {storage.clip_url(clip)})"
            )
        if not m["files"] and m.get("deleted"):
            # A deleted intermediate still has its facts (info); a consumer that needs its
            # files fetches them again (rectified_clip: a ranged read of the shard), so
            # re-running one downstream asset never asks the user to re-run raw_tar.
            if asset in INTERMEDIATES:
                step = context.step_context
                self._loaded[(step.run_id, step.step.key, clip.key, asset)] = m["generation"]
            return ClipArtifact(clip_id=clip.key, asset=asset, files={},
                                info={**m.get("info", {}), "deleted": m["deleted"]},
                                folder=str(storage.local_clip_dir(clip)))
        into = None
        if not storage.is_local:
            instance = context.instance
            storage.prune_downloads(lambda rid: (r := instance.get_run_by_id(rid)) is not None and r.is_finished)
            step = context.step_context
            into = storage.step_download_dir(step.run_id, step.step.key) / asset
            shutil.rmtree(into, ignore_errors=True)
        try:
            files = storage.fetch(clip, m["files"], into or Path("."), checks=m.get("checks"), asset=asset)
        except Exception:
            if into is not None:  # what was downloaded is of no use to anyone
                shutil.rmtree(into, ignore_errors=True)
            raise
        if asset in INTERMEDIATES:
            step = context.step_context
            self._loaded[(step.run_id, step.step.key, clip.key, asset)] = m["generation"]
        return ClipArtifact(
            clip_id=clip.key,
            asset=asset,
            files=files,
            info=m.get("info", {}),
            download_dir=str(into) if into else None,
            locations={role: storage.final_layout(clip).path(r) for role, r in m["files"].items()},
            folder=str(into) if into else str(storage.local_clip_dir(clip)),
        )
