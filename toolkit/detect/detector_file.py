"""The ``.aetk`` detector file: one safetensors file whose metadata holds a JSON manifest.

Loading it runs no code: safetensors holds only raw tensors and a JSON header, and the manifest
names components by their registered names, never by import paths. The manifest records SHA-256
checksums of the tensors and of itself, so a truncated, corrupted or edited file is refused.
Writes are atomic: the file is written beside its destination, flushed to disk, then renamed
over it.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import torch
from aetk_core.fileio import atomic_file

from aetk.detect.manifest import migrate_v1
from aetk.errors import DetectorFileError

FORMAT = "aetk-detector"
#: 2: the threshold and its normal scores moved from the scorer's state to ``calibration``.
DETECTOR_SCHEMA = 2
#: 3: a fleet: one detector per machine and the fleet's categories (``fleet``); an aetk that
#: reads schema 2 only refuses it in one line rather than misreading it.
FLEET_SCHEMA = 3
#: 4: a fleet whose machines share tensors (one network for the fleet): a tensor shared is
#: stored once and ``fleet.aliases`` maps each other name to it.
SHARED_FLEET_SCHEMA = 4
#: The newest schema this aetk reads.
SCHEMA_VERSION = SHARED_FLEET_SCHEMA
MANIFEST_KEY = "aetk"
#: The JSON header (manifest included) may be at most this large.
_MAX_HEADER_BYTES = 64_000_000


def write_detector(
    path: str | Path,
    manifest: dict[str, Any],
    tensors: dict[str, torch.Tensor],
    schema_version: int = DETECTOR_SCHEMA,
) -> None:
    """Write ``tensors`` and ``manifest`` to ``path`` atomically (checksums are added here)."""
    from safetensors.torch import save

    path = Path(path)
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()}
    manifest = dict(manifest, format=FORMAT, schema_version=schema_version)
    manifest["tensors"] = {
        name: {"dtype": str(tensor.dtype).removeprefix("torch."), "shape": list(tensor.shape)}
        for name, tensor in sorted(tensors.items())
    }
    manifest.pop("checksums", None)
    manifest["checksums"] = {
        "tensors_sha256": tensors_digest(tensors),
        "manifest_sha256": manifest_digest(manifest),
    }
    # Serialised in memory, then written through one file handle: a full disk or any other
    # failure to write is an OSError naming its reason, and the old file stays as it was.
    data = save(tensors, metadata={MANIFEST_KEY: json.dumps(manifest)})
    with atomic_file(path) as handle:
        handle.write(data)


def read_detector(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read and verify a detector file; every problem is a :class:`DetectorFileError`.

    The file is opened once and read whole through that one handle, so a detector replaced
    while it is read (atomically, by another process) is read either old or new, never mixed.
    Only a regular file is opened: a FIFO or device named as a detector never blocks the read.
    A schema-1 manifest comes back migrated to this schema.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    try:
        if path.is_dir():
            raise DetectorFileError(f"{path}: is a folder, not a detector file")
        if path.exists() and not path.is_file():
            raise DetectorFileError(f"{path}: is not a regular file, so not a detector file")
        with open(path, "rb") as handle:
            data = handle.read()
        manifest = _manifest(path, data)
        tensors = load(data)
    except FileNotFoundError:
        raise DetectorFileError(
            f"{path}: no detector file here (fit one with 'aetk fit')"
        ) from None
    except OSError as exc:
        raise DetectorFileError(f"{path}: cannot read detector ({exc.strerror or exc})") from None
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise DetectorFileError(f"{path}: corrupt detector file ({str(exc)[:200]})") from None
    _verify(path, manifest, tensors)
    if manifest["schema_version"] == 1:
        manifest = migrate_v1(path, manifest, tensors)
    return manifest, tensors


def _manifest(path: Path, data: bytes) -> dict[str, Any]:
    """Parse the safetensors header by hand, so a foreign file fails before any decoding."""
    not_detector = f"{path}: not an aetk detector file"
    if path.suffix.lower() == ".onnx" and not data.startswith(b"{", 8):
        # The likeliest slip: the export, given to aetk, which reads the .aetk file it came from.
        raise DetectorFileError(
            f"{path}: an ONNX export, which aetk-runtime scores; aetk reads the .aetk file it "
            "was exported from"
        )
    size = len(data)
    if size < 8:
        raise DetectorFileError(f"{not_detector} (only {size} bytes)")
    (header_size,) = struct.unpack("<Q", data[:8])
    if header_size > min(_MAX_HEADER_BYTES, size - 8):
        raise DetectorFileError(
            f"{not_detector} (no safetensors header; truncated, another format, or a header "
            f"over {_MAX_HEADER_BYTES // 1_000_000} MB)"
        )
    try:
        header = json.loads(data[8 : 8 + header_size])
        manifest = json.loads(header["__metadata__"][MANIFEST_KEY])
    except (ValueError, KeyError, TypeError):
        raise DetectorFileError(f"{not_detector} (no aetk manifest in its header)") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DetectorFileError(f"{not_detector} (manifest format is not {FORMAT!r})")
    version = manifest.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise DetectorFileError(
            f"{path}: detector manifest has no valid schema version ({str(version)[:40]!r})"
        )
    if version > SCHEMA_VERSION:
        raise DetectorFileError(
            f"{path}: detector was written by a newer aetk (schema {version}; this aetk reads "
            f"schema {SCHEMA_VERSION} and older): upgrade aetk"
        )
    return manifest


def _verify(path: Path, manifest: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    checksums = manifest.get("checksums") or {}
    if checksums.get("manifest_sha256") != manifest_digest(manifest):
        raise DetectorFileError(
            f"{path}: detector manifest was edited or corrupted (checksum mismatch)"
        )
    if checksums.get("tensors_sha256") != tensors_digest(tensors):
        raise DetectorFileError(
            f"{path}: detector weights were edited or corrupted (checksum mismatch)"
        )
    declared = manifest.get("tensors") or {}
    for name, tensor in tensors.items():
        expected = declared.get(name, {}).get("shape")
        if expected != list(tensor.shape):
            raise DetectorFileError(
                f"{path}: tensor {name!r} has shape {list(tensor.shape)} but the manifest "
                f"says {expected}"
            )
    missing = sorted(set(declared) - set(tensors))
    if missing:
        raise DetectorFileError(f"{path}: detector lacks tensors {', '.join(missing)}")


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{list(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def manifest_digest(manifest: dict[str, Any]) -> str:
    """SHA-256 of the manifest's canonical JSON, without its ``checksums`` entry."""
    body = {key: value for key, value in manifest.items() if key != "checksums"}
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
