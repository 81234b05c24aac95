"""Scorers: what turns a candidate feature matrix into model scores at request time.

TensorFlow never enters this module (nor anything under ``fuserec_os.rerank``): importing TF costs ~6 s and
~700 MB per process and its call overhead (``model(x)`` 4-10 ms) is larger than the whole NumPy forward pass
(see /work/shared/notes/mlp-serving.md). Training exports the Keras weights into a :class:`NumpyMLPScorer`.

Serving note: a NumPy matmul uses every core through OpenBLAS by default; in a multi-worker server limit
BLAS to one thread per worker (``threadpoolctl.threadpool_limits(1)`` or ``OPENBLAS_NUM_THREADS=1``) and log
:func:`blas_info` at start-up (the chosen kernel matters 1.6-4x).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

OUTPUTS = ("sigmoid", "linear")
FORMAT = "fuserec-numpy-mlp/1"


@runtime_checkable
class Scorer(Protocol):
    """Scores a candidate list. ``X`` is float [n, len(feature_names)], columns in ``feature_names`` order."""

    @property
    def version(self) -> str: ...

    @property
    def feature_names(self) -> tuple[str, ...]: ...

    def predict(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """One score per row, float64 [n]; higher = better."""
        ...

    def explain(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Per-feature contributions, float64 [n, d]."""
        ...

    def close(self) -> None: ...


def _check_matrix(X: npt.ArrayLike, names: tuple[str, ...]) -> npt.NDArray[np.float32]:
    arr = np.asarray(X, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(
            f"feature matrix must be 2-D [candidates, features]; got an array of shape {arr.shape} "
            f"(expected [n, {len(names)}])"
        )
    if arr.shape[1] != len(names):
        raise ValueError(
            f"feature matrix has {arr.shape[1]} columns but the scorer expects {len(names)} "
            f"(its features: {', '.join(names[:8])}{', ...' if len(names) > 8 else ''})"
        )
    return arr


class NoopScorer:
    """Scores every candidate 0: the cold-start and fallback scorer (the blend then keeps engine order)."""

    version = "noop"

    def __init__(self, feature_names: Sequence[str] = ()) -> None:
        self._names = tuple(feature_names)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self._names

    def _rows(self, X: npt.ArrayLike) -> tuple[int, int]:
        arr = np.asarray(X)
        if arr.ndim != 2:
            raise ValueError(f"feature matrix must be 2-D [candidates, features]; got shape {arr.shape}")
        if self._names and arr.shape[1] != len(self._names):
            raise ValueError(f"feature matrix has {arr.shape[1]} columns but the scorer expects {len(self._names)}")
        return int(arr.shape[0]), int(arr.shape[1])

    def predict(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:
        n, _ = self._rows(X)
        return np.zeros(n, dtype=np.float64)

    def explain(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:
        return np.zeros(self._rows(X), dtype=np.float64)

    def close(self) -> None:
        return None


class NumpyMLPScorer:
    """A Keras-trained MLP evaluated in NumPy (float32).

    ``weights`` are the Dense layers' ``[kernel_1, bias_1, ..., kernel_out, bias_out]`` exactly as
    ``layer.get_weights()`` gives them (kernel ``[in, out]``); hidden layers use ReLU, the last layer has one
    unit and ``output`` ``"sigmoid"`` (pointwise models) or ``"linear"`` (listwise models). ``mean``/``std``
    are the training scaler (the model was trained on ``(x - mean) / std``).

    At construction the scaler is folded into the first layer (``W1' = W1 / std[:, None]``,
    ``b1' = b1 - (mean / std) @ W1``, computed in float64 then cast), so ``predict`` is only matmuls, bias
    adds and ReLUs on the raw feature matrix.
    """

    def __init__(
        self,
        weights: Sequence[npt.ArrayLike],
        mean: npt.ArrayLike,
        std: npt.ArrayLike,
        feature_names: Sequence[str],
        output: Literal["sigmoid", "linear"] = "sigmoid",
        version: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)} (got {output!r})")
        ws = [np.asarray(w, dtype=np.float32) for w in weights]
        if not ws or len(ws) % 2:
            raise ValueError(f"weights must be [kernel, bias] pairs, got {len(ws)} arrays")
        names = tuple(str(n) for n in feature_names)
        d = len(names)
        m = np.asarray(mean, dtype=np.float64).ravel()
        s = np.asarray(std, dtype=np.float64).ravel()
        if m.shape != (d,) or s.shape != (d,):
            raise ValueError(f"mean and std must have one value per feature ({d}); got {m.shape} and {s.shape}")
        if not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise ValueError("std must be finite and > 0 everywhere (replace 0 by 1 when fitting the scaler)")
        fan_in = d
        for i in range(0, len(ws), 2):
            k, b = ws[i], ws[i + 1]
            if k.ndim != 2 or k.shape[0] != fan_in or b.shape != (k.shape[1],):
                raise ValueError(
                    f"layer {i // 2 + 1}: kernel {k.shape} / bias {b.shape} do not chain from {fan_in} inputs"
                )
            fan_in = k.shape[1]
        if fan_in != 1:
            raise ValueError(f"the last layer must have 1 unit (got {fan_in})")

        self._names = names
        self._output = output
        self._raw = ws  # unfolded, as trained: what to_bytes stores
        self._mean = m  # float64, stored as given so from_bytes folds bit-identically
        self._std = s
        self.meta: dict[str, Any] = dict(meta or {})
        self._version = version or self._content_hash()

        # fold the scaler into layer 1 (float64 arithmetic, float32 result)
        k1 = ws[0].astype(np.float64)
        folded_k = k1 / s[:, None]
        folded_b = ws[1].astype(np.float64) - (m / s) @ k1
        self._kernels: list[npt.NDArray[np.float32]] = [np.ascontiguousarray(folded_k, dtype=np.float32)]
        self._biases: list[npt.NDArray[np.float32]] = [folded_b.astype(np.float32)]
        for i in range(2, len(ws), 2):
            self._kernels.append(np.ascontiguousarray(ws[i]))
            self._biases.append(ws[i + 1])
        # explain() uses the logit at the training mean; computed once
        self._logit_at_mean = float(self._logits(self._mean[None, :].astype(np.float32))[0])

    # ------------------------------------------------------------------ Scorer protocol

    @property
    def version(self) -> str:
        return self._version

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self._names

    @property
    def output(self) -> str:
        return self._output

    @property
    def n_layers(self) -> int:
        return len(self._kernels)

    def _logits(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        h = x
        last = len(self._kernels) - 1
        for i, (k, b) in enumerate(zip(self._kernels, self._biases, strict=True)):
            h = h @ k
            h += b
            if i < last:
                np.maximum(h, 0.0, out=h)
        return h[:, 0]

    def _activate(self, z: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float64]:
        if self._output == "sigmoid":
            # 0.5 * (1 + tanh(z / 2)) == sigmoid(z), without overflow for large |z|
            return (0.5 * (1.0 + np.tanh(0.5 * z.astype(np.float64)))).astype(np.float64)
        return z.astype(np.float64)

    def predict(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:
        x = _check_matrix(X, self._names)
        if x.shape[0] == 0:
            return np.zeros(0, dtype=np.float64)
        return self._activate(self._logits(x))

    def explain(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Gradient x input relative to the training mean: ``c[i, j] = dz/dx_j(x_i) * (x_ij - mean_j) * r_i``.

        ``z`` is the last layer's pre-activation (the logit). A ReLU network is piecewise linear, so on the
        logit scale the contributions sum to ``z(x) - z(mean)`` *exactly* whenever ``x`` and the mean switch
        on the same ReLUs (always for a network without hidden layers) and approximately otherwise.
        ``r_i`` maps the logit difference to the output scale: for a sigmoid output it is the secant slope
        ``(sigmoid(z(x)) - sigmoid(z(mean))) / (z(x) - z(mean))`` (the sigmoid's slope when they are equal),
        for a linear output it is 1, so the row sums approximate ``predict(x) - predict(mean)``.
        """
        x = _check_matrix(X, self._names)
        n = x.shape[0]
        if n == 0:
            return np.zeros((0, len(self._names)), dtype=np.float64)
        # forward pass keeping the ReLU masks
        masks: list[npt.NDArray[np.bool_]] = []
        h = x
        last = len(self._kernels) - 1
        for i, (k, b) in enumerate(zip(self._kernels, self._biases, strict=True)):
            h = h @ k + b
            if i < last:
                masks.append(h > 0)
                h = np.maximum(h, 0.0)
        z = h[:, 0].astype(np.float64)
        # backward: dz/dx per row
        g = np.broadcast_to(self._kernels[-1][:, 0], (n, self._kernels[-1].shape[0])).astype(np.float32)
        for i in range(last - 1, -1, -1):
            g = (g * masks[i]) @ self._kernels[i].T  # through ReLU i, then back through layer i
        contrib = g.astype(np.float64) * (x.astype(np.float64) - self._mean)
        if self._output == "sigmoid":
            z0 = self._logit_at_mean
            dz = z - z0
            p, p0 = self._activate(z), float(self._activate(np.array([z0]))[0])
            slope_at = p * (1.0 - p)
            small = np.abs(dz) < 1e-6
            r = np.where(small, slope_at, (p - p0) / np.where(small, 1.0, dz))
            contrib *= r[:, None]
        return contrib

    def close(self) -> None:
        return None

    # ------------------------------------------------------------------ serialisation

    def _content_hash(self) -> str:
        h = hashlib.sha256()
        for a in (*self._raw, self._mean, self._std):
            h.update(np.ascontiguousarray(a).tobytes())
        h.update(json.dumps([list(self._names), self._output]).encode())
        return f"mlp-{h.hexdigest()[:12]}"

    def to_bytes(self) -> bytes:
        """``np.savez_compressed`` of the trained (unfolded) weights, the scaler and a JSON header."""
        header = {
            "format": FORMAT,
            "feature_names": list(self._names),
            "output": self._output,
            "version": self._version,
            "n_layers": len(self._raw) // 2,
            "meta": self.meta,
        }
        arrays: dict[str, npt.NDArray[Any]] = {f"w{i}": w for i, w in enumerate(self._raw)}
        arrays["mean"] = self._mean
        arrays["std"] = self._std
        arrays["header"] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> NumpyMLPScorer:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                header = json.loads(z["header"].tobytes().decode("utf-8"))
                if header.get("format") != FORMAT:
                    raise ValueError(f"not a {FORMAT} blob (format {header.get('format')!r})")
                weights = [z[f"w{i}"] for i in range(2 * int(header["n_layers"]))]
                mean, std = z["mean"], z["std"]
        except (OSError, KeyError, ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
            raise ValueError(f"cannot read a NumPy MLP scorer from these bytes: {exc}") from None
        return cls(
            weights,
            mean,
            std,
            header["feature_names"],
            output=header["output"],
            version=header["version"],
            meta=header.get("meta") or {},
        )


def blas_info() -> list[dict[str, Any]]:
    """The BLAS/OpenMP thread pools NumPy uses (library, version, kernel ``architecture``, threads): log it."""
    from threadpoolctl import threadpool_info

    return [dict(p) for p in threadpool_info()]
