"""Base classes of the three kinds of component: featurizers, models and scorers.

Components follow scikit-learn's conventions:

- ``__init__`` only stores its keyword arguments under the same names; it validates nothing and
  builds nothing, so ``cls(**obj.get_params())`` always rebuilds an equivalent, unfitted object.
- Learned state lives in public attributes whose names end in ``_`` (``threshold_``, ``module_``);
  the detector file stores exactly those.
- ``fit`` returns ``self``; using an unfitted component raises :class:`aetk.NotFittedError`.

Scores follow one sign convention everywhere in aetk: **higher means more anomalous**.

This module does not import torch, so that plugins can be listed without paying for it.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from aetk.errors import ConfigError, NotFittedError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from aetk.fitting.config import TrainingConfig


class Component:
    """What every featurizer, model and scorer shares: a name, parameters and learned state."""

    #: The name users select the component by, unique within its kind (``"mel-db"``).
    name: ClassVar[str] = ""
    #: ``"featurizer"``, ``"model"`` or ``"scorer"``; set by the three base classes.
    kind: ClassVar[str] = ""

    @classmethod
    def param_names(cls) -> list[str]:
        """The constructor's keyword parameters, which fully describe an unfitted component."""
        if cls.__init__ is object.__init__:
            return []
        names = []
        for param in list(inspect.signature(cls.__init__).parameters.values())[1:]:
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise TypeError(
                    f"{cls.__name__}.__init__ must list its parameters explicitly, "
                    "not *args/**kwargs"
                )
            names.append(param.name)
        return names

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Component:
        """Build the component from parameters, with a clear error for a misspelled one."""
        known = cls.param_names()
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise ConfigError(
                f"{cls.kind} '{cls.name}' has no parameter {', '.join(map(repr, unknown))} "
                f"(its parameters: {', '.join(known) or 'none'})"
            )
        return cls(**params)

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments, read back from the attributes of the same names."""
        return {name: getattr(self, name) for name in self.param_names()}

    def learned_state(self) -> dict[str, Any]:
        """Every learned attribute (public, name ending in ``_``)."""
        return {
            key: value
            for key, value in vars(self).items()
            if key.endswith("_") and not key.startswith("_")
        }

    def is_fitted(self) -> bool:
        return bool(self.learned_state())

    def check_fitted(self) -> None:
        if not self.is_fitted():
            raise NotFittedError(
                f"{self.kind} '{self.name}' is not fitted yet: call fit() or load a detector first"
            )

    def __repr__(self) -> str:
        params = ", ".join(f"{key}={value!r}" for key, value in self.get_params().items())
        return f"{type(self).__name__}({params})"


@dataclass(frozen=True)
class FeatureLayout:
    """How the elements of a featurizer's vectors map to time and frequency, for explanations.

    Vectors are ``[channels, bands, frames]``. Vector ``i`` starts at analysis frame
    ``i * vector_step`` (``vector_step`` 0: one vector covers the whole clip), and analysis frame
    ``t`` starts ``t * frame_seconds`` into the clip. Band ``b`` spans ``band_edges_hz[b]``.
    """

    frame_seconds: float
    band_edges_hz: tuple[tuple[float, float], ...]
    vector_step: int


@dataclass
class Localization:
    """Where in one clip a scorer sees the anomaly.

    ``vector_scores``: one score per vector (higher is more anomalous; compared with the scorer's
    ``event_threshold_``). ``contributions``: ``[vectors, *vector_shape]``, how much each element
    of each vector adds to its score (compared with the scorer's ``normal_contributions_``).
    """

    vector_scores: torch.Tensor
    contributions: torch.Tensor


#: Percentile of normal vectors' scores above which a vector belongs to an event.
EVENT_PERCENTILE = 99.0


class Featurizer(Component):
    """Turns a waveform into feature vectors: ``[n_vectors, *vector_shape]`` float32.

    A clip may yield one vector (a whole spectrogram image) or many (frame-context vectors);
    models train on vectors and scorers pool the vectors of one clip into its score. Featurizers
    hold no learned state: aetk standardises their output with training-set statistics itself.
    """

    kind = "featurizer"

    def frames_to_read(self, file_sample_rate: int) -> int | None:
        """How many sample frames of a file at ``file_sample_rate`` the featurizer uses.

        aetk decodes no more than that; ``None`` (the default) means the whole file.
        """
        return None

    def featurize(self, waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Features of one clip.

        :param waveform: ``[channels, samples]`` float32, finite, as decoded from the file.
        :param sample_rate: the file's sample rate in Hz.
        :return: ``[n_vectors, *vector_shape]`` float32, with the same ``vector_shape`` for every
            clip; raise :class:`aetk.AudioError` (without a path) for audio it cannot use.
        """
        raise NotImplementedError

    def layout(self) -> FeatureLayout | None:
        """How vector elements map to time and frequency; ``None`` (the default) if they don't."""
        return None

    def featurize_batch(self, waveforms: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Features of equal-length clips ``[batch, channels, samples]`` → ``[batch, n, *shape]``.

        Override it when the featurizer can do better than one clip at a time.
        """
        import torch

        return torch.stack([self.featurize(waveform, sample_rate) for waveform in waveforms])


class Model(Component):
    """A PyTorch network trained on the standardised feature vectors of normal recordings.

    Subclasses implement :meth:`build`; aetk's training loop (Adam, MSE) does the rest. The
    network's ``forward(x)`` returns ``(reconstruction, latent)``, and the reconstruction is
    compared with :meth:`target` of the input (the input itself for an autoencoder).

    Learned state: ``module_`` (the network), ``input_shape_`` and ``history_`` (per-epoch losses).
    """

    kind = "model"

    def build(self, input_shape: tuple[int, ...]) -> torch.nn.Module:
        """A freshly initialised network for vectors of ``input_shape`` (without the batch axis)."""
        raise NotImplementedError

    def target(self, x: torch.Tensor) -> torch.Tensor:
        """What the reconstruction of the batch ``x`` should equal; the input by default."""
        return x

    def initialize(self, input_shape: Sequence[int]) -> Model:
        """Create the untrained network for vectors of ``input_shape``; returns self."""
        self.input_shape_ = tuple(int(size) for size in input_shape)
        self.module_ = self.build(self.input_shape_)
        return self

    def fit(
        self,
        train: torch.Tensor,
        validation: torch.Tensor | None = None,
        *,
        training: TrainingConfig | None = None,
        on_epoch: Any = None,
        group: Any = None,
    ) -> Model:
        """Train on vectors ``[n, *shape]``, keeping the weights of the best validation loss.

        :param on_epoch: optional callable receiving each :class:`aetk.fitting.trainer.EpochReport`;
            ``history_`` keeps them as dictionaries.
        :param group: the :class:`aetk.fitting.distributed.Group` of a distributed fit (each rank
            passes its own shard of the vectors), or None.
        """
        from dataclasses import asdict

        from aetk.fitting.config import TrainingConfig
        from aetk.fitting.trainer import fit_model

        reports = fit_model(self, train, validation, training or TrainingConfig(), on_epoch, group)
        self.history_ = [asdict(report) for report in reports]
        return self

    def reconstruct(self, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        """The network's reconstruction of the vectors ``x`` (shaped like ``target(x)``)."""
        from aetk.fitting.trainer import reconstructions

        self.check_fitted()
        return reconstructions(self, x, batch_size=batch_size)

    def errors(self, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        """Element-wise squared reconstruction error of vectors ``x``, shaped like the target."""
        from aetk.fitting.trainer import reconstruction_errors

        self.check_fitted()
        return reconstruction_errors(self, x, batch_size=batch_size)

    def latent(self, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        """Latent codes of the vectors ``x``, flattened to ``[n, latent_size]``."""
        from aetk.fitting.trainer import latent_codes

        self.check_fitted()
        return latent_codes(self, x, batch_size=batch_size)


class Scorer(Component):
    """Turns a fitted model and the vectors of clips into one anomaly score per clip.

    ``fit`` sees the vectors of the training clips and of held-out validation clips (normal
    recordings the model did not train on) and must set ``threshold_``: a clip whose score is
    above it is anomalous. Higher scores mean more anomalous.
    """

    kind = "scorer"

    def fit(
        self, model: Model, train: Sequence[torch.Tensor], validation: Sequence[torch.Tensor]
    ) -> Scorer:
        """Learn what the scorer needs and set ``threshold_``; returns self."""
        raise NotImplementedError

    def score(self, model: Model, clips: Sequence[torch.Tensor]) -> np.ndarray:
        """One float64 score per clip; each clip is ``[n_vectors, *vector_shape]``."""
        raise NotImplementedError

    def normal_clips(
        self, train: Sequence[torch.Tensor], validation: Sequence[torch.Tensor]
    ) -> Sequence[torch.Tensor]:
        """The normal clips to fit the threshold on: the validation clips, or, with a warning
        that the threshold will be too lenient, the training clips when there are none."""
        if len(validation):
            return validation
        import warnings

        from aetk.errors import AetkWarning

        warnings.warn(
            f"{self.name}: no validation clips, so the threshold is fitted on the training clips "
            "and will raise fewer alarms than intended",
            AetkWarning,
            stacklevel=3,
        )
        return train

    def set_threshold(self, scores: np.ndarray, method: str, percentile: float) -> None:
        """Set ``threshold_`` and ``threshold_method_`` from normal clips' ``scores`` (see
        :func:`aetk.fit_threshold`), keeping the scores as ``validation_scores_``."""
        from aetk.detect.calibration import fit_threshold

        self.threshold_, self.threshold_method_ = fit_threshold(
            scores, method=method, percentile=percentile
        )
        self.validation_scores_ = scores

    def localize(self, model: Model, clip: torch.Tensor) -> Localization | None:
        """Where in ``clip`` the anomaly is: per-vector scores and per-element contributions.

        Optional. A scorer that localizes returns a :class:`Localization` and, in ``fit``,
        calls :meth:`fit_localization` on normal clips, which sets ``event_threshold_`` and
        ``normal_contributions_``. The default returns ``None``: "this scorer cannot localize".
        """
        return None

    def fit_localization(self, localizations: Iterable[Localization]) -> None:
        """Learn what normal looks like from localizations of normal clips (not trained on):
        ``event_threshold_``, the :data:`EVENT_PERCENTILE` of their vector scores, and
        ``normal_contributions_``, the mean contribution of every vector element. Reads the
        localizations one at a time."""
        import numpy as np
        import torch

        scores, total, count = [], None, 0
        for localization in localizations:
            scores.append(localization.vector_scores.double())
            clip_total = localization.contributions.double().sum(0)
            total = clip_total if total is None else total + clip_total
            count += len(localization.contributions)
        self.event_threshold_ = float(np.percentile(torch.cat(scores).numpy(), EVENT_PERCENTILE))
        self.normal_contributions_ = (total / count).float()


COMPONENT_KINDS: dict[str, type[Component]] = {cls.kind: cls for cls in (Featurizer, Model, Scorer)}
