"""Everything a replica needs to rerank with one trained model, in one blob for the registry.

A model is more than its weights: the feature set it was trained on (in column order), the blend gate tuned on
validation, and the product latent vectors its ``latent_dot`` feature was computed with. Shipping them together
means a replica that loads version N can never mix N's weights with another build's vectors.
Format: a zip with ``scorer.bin`` (:meth:`NumpyMLPScorer.to_bytes`), ``meta.json`` and ``vectors.npz``.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from fuserec_os.errors import FuserecError
from fuserec_os.rerank.blend import Gate
from fuserec_os.rerank.scorer import NumpyMLPScorer

FORMAT = "fuserec-model-artifact"
FORMAT_VERSION = 1


class ArtifactError(FuserecError):
    """A model blob that cannot be read (wrong format, missing member, version from the future)."""

    exit_code = 10


@dataclass
class ModelArtifact:
    scorer: NumpyMLPScorer
    features: tuple[str, ...]
    gate: Gate
    product_vectors: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        ids = sorted(self.product_vectors)
        dims = len(next(iter(self.product_vectors.values()))) if ids else 0
        matrix = np.vstack([self.product_vectors[i] for i in ids]).astype(np.float32) if ids else np.zeros((0, dims))
        vec = io.BytesIO()
        np.savez_compressed(vec, ids=np.array(ids, dtype=object).astype(str), vectors=matrix)
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "features": list(self.features),
            "gate": asdict(self.gate),
            "meta": self.meta,
        }
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr("scorer.bin", self.scorer.to_bytes())
            z.writestr("meta.json", json.dumps(meta, default=str))
            z.writestr("vectors.npz", vec.getvalue())
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ModelArtifact:
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                meta = json.loads(z.read("meta.json"))
                scorer = NumpyMLPScorer.from_bytes(z.read("scorer.bin"))
                with np.load(io.BytesIO(z.read("vectors.npz")), allow_pickle=False) as npz:
                    ids = [str(i) for i in npz["ids"]]
                    matrix = np.asarray(npz["vectors"], dtype=np.float64)
        except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
            raise ArtifactError(f"not a fuserec model artifact: {exc}") from exc
        if meta.get("format") != FORMAT or int(meta.get("format_version", 0)) > FORMAT_VERSION:
            raise ArtifactError(
                f"unsupported model artifact {meta.get('format')!r} v{meta.get('format_version')} "
                f"(this fuserec reads {FORMAT} up to v{FORMAT_VERSION}; upgrade fuserec-os)"
            )
        try:
            gate: Mapping[str, Any] = meta.get("gate", {})
            return cls(
                scorer=scorer,
                features=tuple(meta["features"]),
                gate=Gate(**gate),
                product_vectors={pid: matrix[i] for i, pid in enumerate(ids)},
                meta=dict(meta.get("meta", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"model artifact metadata is incomplete or invalid: {exc!r}") from exc
