"""Base classes of the three kinds of component: featurizers, models and scorers.

Components follow scikit-learn's conventions:

- ``__init__`` only stores its keyword arguments under the same names; it validates nothing and
  builds nothing, so ``cls(**obj.get_params())`` always rebuilds an equivalent, unfitted object.
- Learned state lives in public attributes whose names end in ``_`` (``module_``, ``reference_``);
  the detector file stores exactly those.
- ``fit`` returns ``self``; using an unfitted component raises :class:`aetk.NotFittedError`.

Scores follow one sign convention everywhere in aetk: **higher means more anomalous**.

This module does not import torch, so that plugins can be listed without paying for it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from aetk.errors import ConfigError, NotFittedError

if TYPE_CHECKING:
    import numpy as np
    import torch


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
        return list(_parameter_names(cls.__init__, cls.__name__))

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

    def validate(self) -> None:
        """Check the parameters, raising :class:`aetk.ConfigError` naming the bad one.

        aetk calls it before fitting and when a detector file is loaded (the error then names the
        file); components also call it at the start of their own work. The default accepts all.
        """

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

    A scorer that judges a clip through several views (its whole-clip average and its most
    unusual moment, say) names the ``view`` whose score became the clip's score, and, for a view
    of a moment, the vectors ``view_vectors`` (``[start, end)``) of that moment.
    """

    vector_scores: torch.Tensor
    contributions: torch.Tensor
    view: str | None = None
    view_vectors: tuple[int, int] | None = None


#: Percentile of normal vectors' scores above which a vector belongs to an event.
EVENT_PERCENTILE = 99.0


class Featurizer(Component):
    """Turns a waveform into feature vectors: ``[n_vectors, *vector_shape]`` float32.

    A clip may yield one vector (a whole spectrogram image) or many (frame-context vectors);
    models train on vectors and scorers pool the vectors of one clip into its score. Featurizers
    hold no learned state: aetk standardises their output with training-set statistics itself.
    """

    kind = "featurizer"
    #: Part of the feature cache's key beside the name, parameters and the class's source code:
    #: bump it when code outside the class (a module-level helper, a library) changes the
    #: features, so that no stale features are read.
    cache_version: ClassVar[str] = "1"

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

    Model code is network code only: subclasses implement :meth:`build`, and aetk's trainer
    (Adam on the mean squared error between the reconstruction and :meth:`target` of the input)
    drives it. The network's ``forward(x)`` returns ``(reconstruction, latent)``.

    Learned state: ``module_`` (the network), ``input_shape_`` and ``history_`` (per-epoch losses).
    """

    kind = "model"
    module_: torch.nn.Module
    input_shape_: tuple[int, ...]
    history_: list[dict[str, Any]]
    #: False for a model with nothing to train (``identity``): aetk then runs no epochs, reports no
    #: held-out loss, and scorers that need reconstruction errors refuse it.
    trainable: ClassVar[bool] = True
    #: False for a network whose first output is not a reconstruction of the input (a classifier's
    #: log-likelihoods): scorers that need reconstruction errors refuse it, and explanations
    #: show no reconstruction.
    reconstructs: ClassVar[bool] = True
    #: True for a network of a whole fleet that takes each vector's categories (see
    #: :doc:`fleets`): ``forward(x, codes)``, ``codes`` the ``[batch, columns]`` value indices of
    #: the fleet's categories, which aetk stores in ``categories_`` (``Categories.as_dict()``)
    #: before :meth:`build`. Fitted with ``aetk fit --machines``, the fleet's one network is then
    #: bound to each machine (:meth:`bind`), and every scorer works with it as with any model.
    conditioned: ClassVar[bool] = False
    #: The fleet's categories a conditioned model's network encodes (``Categories.as_dict()``),
    #: set by aetk before :meth:`build`.
    categories_: list[dict[str, Any]]
    #: The categories' value indices a conditioned model is bound to (:meth:`bind`), one per
    #: column; absent until bound.
    condition_: list[int]

    def build(self, input_shape: tuple[int, ...]) -> torch.nn.Module:
        """A freshly initialised network for vectors of ``input_shape`` (without the batch axis)."""
        raise NotImplementedError

    def target(self, x: torch.Tensor) -> torch.Tensor:
        """What the reconstruction of the batch ``x`` should equal; the input by default."""
        return x

    def loss(self, output: tuple[torch.Tensor, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """The training loss of the network's ``output`` on the batch ``x``, averaged over the
        batch: by default the mean squared error between the reconstruction and ``target(x)``.
        A network trained otherwise (a classifier's negative log-likelihood) overrides it."""
        import torch

        return torch.nn.functional.mse_loss(output[0].float(), self.target(x))

    def bind(self, condition: Sequence[int]) -> Model:
        """A conditioned model bound to one machine's category ``condition`` (one value index
        per column): a copy sharing this model's network, which feeds ``condition`` to every
        vector it is given."""
        import copy

        if not self.conditioned:
            raise TypeError(f"model '{self.name}' is not conditioned on categories")
        bound = copy.copy(self)
        bound.condition_ = [int(code) for code in condition]
        return bound

    def network(self) -> torch.nn.Module:
        """The network as scorers and ``aetk export`` call it, ``forward(x)``: ``module_``
        itself, or, for a conditioned model, ``module_`` fed the bound condition."""
        from aetk.components.networks import Bound

        self.check_fitted()
        if not self.conditioned:
            return self.module_
        if getattr(self, "condition_", None) is None:
            raise NotFittedError(
                f"model '{self.name}' is conditioned on categories: bind it to a machine first"
            )
        return Bound(self.module_, self.condition_)

    def initialize(self, input_shape: Sequence[int]) -> Model:
        """Create the untrained network for vectors of ``input_shape``; returns self."""
        self.input_shape_ = tuple(int(size) for size in input_shape)
        self.module_ = self.build(self.input_shape_)
        return self

    def reconstruct(self, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        """The network's reconstruction of the vectors ``x`` (shaped like ``target(x)``)."""
        return self._outputs(x, batch_size, lambda chunk, output: output[0])

    def residuals(self, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        """``target(x)`` minus the reconstruction of the vectors ``x``, shaped like the target."""
        return self._outputs(x, batch_size, lambda chunk, output: self.target(chunk) - output[0])

    def errors(self, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        """Element-wise squared reconstruction error of vectors ``x``, shaped like the target."""
        return self.residuals(x, batch_size).square()

    def latent(self, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        """Latent codes of the vectors ``x``, flattened to ``[n, latent_size]``."""
        return self._outputs(x, batch_size, lambda chunk, output: output[1].flatten(1))

    def _outputs(self, x: Any, batch_size: int, take: Any) -> torch.Tensor:
        """``take(chunk, forward(chunk))`` over slices of ``x`` in evaluation mode, on the CPU."""
        import torch

        module = self.network()
        module.eval()
        device = next(module.parameters(), torch.empty(0)).device
        parts = []
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                chunk = x[start : start + batch_size].to(device)
                parts.append(take(chunk, module(chunk)).cpu())
        return torch.cat(parts) if parts else torch.empty((0, *tuple(x.shape[1:])))


class Scorer(Component):
    """Turns a fitted model and the vectors of clips into one anomaly score per clip.

    Scorers score, and only score: higher means more anomalous. ``fit`` learns what the scorer
    needs from the training clips and held-out validation clips (normal recordings the model did
    not train on). aetk itself turns the scores of normal clips the scorer has not learned from
    (:meth:`held_out_scores`) into the detector's threshold, as the ``[threshold]`` settings say.
    """

    kind = "scorer"
    #: True for a scorer whose scores come from reconstruction errors: a model that reconstructs
    #: exactly (``trainable = False``) would give every clip the same score, so fit refuses it.
    needs_reconstruction: ClassVar[bool] = False

    def fit(
        self, model: Model, train: Sequence[torch.Tensor], validation: Sequence[torch.Tensor]
    ) -> Scorer:
        """Learn what the scorer needs (references, statistics); returns self."""
        raise NotImplementedError

    def views(self) -> tuple[str, ...]:
        """The views a clip is judged through, when there are several (``("clip", "frames",
        "event")``: the clip's average, its frames on average and its most unusual moment), each
        calibrated on held-out normal clips; a localization then names the view that gave the
        score. Empty (the default): one view."""
        return ()

    def score(self, model: Model, clips: Sequence[torch.Tensor]) -> np.ndarray:
        """One float64 score per clip; each clip is ``[n_vectors, *vector_shape]``."""
        raise NotImplementedError

    def localizes_while_scoring(self) -> bool:
        """Whether :meth:`score_and_localize` costs about what :meth:`score` costs: the
        localization falls out of the scoring pass (the reconstruction errors, the nearest
        references), or the scorer does not localize. Where only the clips found anomalous are
        localized (``aetk score``'s table), aetk then takes them from that one pass; otherwise
        (the default, always correct) it scores every clip and then the anomalous ones again
        with :meth:`score_and_localize`."""
        return False

    def held_out_scores(
        self, model: Model, train: Sequence[torch.Tensor], validation: Sequence[torch.Tensor]
    ) -> np.ndarray:
        """Scores of normal clips as a new normal recording would get them, for the threshold.

        The default scores the validation clips (which the scorer and model did not learn
        from); with none, the training clips, with a warning: clips the scorer learned from
        score lower than new normal ones, so the threshold stands too low and raises more false
        alarms than asked for. A scorer that learns from every clip overrides it with
        leave-one-out scores. aetk cross-fits instead (fresh components on folds of files) where
        clips were cut from recordings or a trained model has few files, so this need not know
        which clips share a recording.
        """
        if len(validation):
            return self.score(model, validation)
        import warnings

        from aetk.errors import AetkWarning

        warnings.warn(
            f"{self.name}: no validation clips, so the threshold is calibrated on the training "
            "clips, which score lower than new normal ones: expect more false alarms than "
            "asked for (fit on more recordings)",
            AetkWarning,
            stacklevel=3,
        )
        return self.score(model, train)

    def localize(self, model: Model, clip: torch.Tensor) -> Localization | None:
        """Where in ``clip`` the anomaly is: per-vector scores and per-element contributions.

        Optional. A scorer that localizes returns a :class:`Localization` and, in ``fit``,
        calls :meth:`fit_localization` on normal clips, which sets ``event_threshold_`` and
        ``normal_contributions_``. The default returns ``None``: "this scorer cannot localize".
        """
        return None

    def score_and_localize(
        self, model: Model, clips: Sequence[torch.Tensor]
    ) -> tuple[np.ndarray, list[Localization | None]]:
        """Scores and localizations of ``clips`` together; aetk calls it instead of
        :meth:`score` when a verdict must say where the anomaly is. Override it to get both
        from one pass over the model; the default calls :meth:`score` and :meth:`localize`."""
        return self.score(model, clips), [self.localize(model, clip) for clip in clips]

    def export_module(self, model: Model) -> torch.nn.Module | None:
        """A ``torch.nn.Module`` computing this scorer's score of one clip for ``aetk export``,
        or ``None`` (the default): "this scorer cannot be exported".

        The module's ``forward(vectors)`` takes one clip's standardised vectors
        ``[n_vectors, *vector_shape]`` (``n_vectors`` varies) and returns a tensor of shape ``[1]``,
        the clip's score, equal to ``score(model, [vectors])``; a scorer of several views may
        return ``(score, view)``, ``view`` an integer tensor ``[3]``: the index in
        :meth:`views` of the view that gave the score and the vectors ``[first, last)`` of its
        moment (first = last for a view of the whole clip). A scorer that localizes may return
        ``(score, view, vector_scores, contributions)``, the clip's :class:`Localization` as
        :meth:`score_and_localize` gives it (``[n_vectors]`` and ``[n_vectors, *vector_shape]``),
        from which aetk-runtime finds events and their bands (``view`` is read only for a scorer
        of several views). It may call ``model.module_``; it must use only operations PyTorch's
        ONNX exporter supports.
        """
        return None

    def fit_localization(self, localizations: Iterable[Localization]) -> None:
        """Learn what normal looks like from localizations of normal clips (not trained on):
        ``event_threshold_``, the :data:`EVENT_PERCENTILE` of their vector scores, and
        ``normal_contributions_``, the mean contribution of every vector element. Reads the
        localizations one at a time."""
        import numpy as np
        import torch

        scores: list[torch.Tensor] = []
        total: torch.Tensor | None = None
        count = 0
        for localization in localizations:
            scores.append(localization.vector_scores.double())
            clip_total = localization.contributions.double().sum(0)
            total = clip_total if total is None else total + clip_total
            count += len(localization.contributions)
        self.event_threshold_ = float(np.percentile(torch.cat(scores).numpy(), EVENT_PERCENTILE))
        if total is None:
            raise ValueError("fit_localization needs at least one localization")
        self.normal_contributions_ = (total / count).float()


class Normalizer(Component):
    """Standardises feature vectors with statistics of the training vectors.

    ``fit`` learns from the training clips, ``transform`` maps vectors into the space the model
    and scorer work in, ``inverse_transform`` maps them back (a reconstruction shown as dB).
    aetk provides one, ``standardizer``; the ``[training] normalize`` setting chooses its mode.
    """

    kind = "normalizer"

    def fit(self, vectors: Any, reduce: Any = None) -> Normalizer:
        raise NotImplementedError

    def transform(self, vectors: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def inverse_transform(self, vectors: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def export_module(self) -> torch.nn.Module | None:
        """A ``torch.nn.Module`` doing :meth:`transform` for ``aetk export``; None: cannot."""
        return None


COMPONENT_KINDS: dict[str, type[Component]] = {
    cls.kind: cls for cls in (Featurizer, Normalizer, Model, Scorer)
}


@functools.cache
def _parameter_names(init: Callable[..., None], class_name: str) -> tuple[str, ...]:
    """The parameters of a constructor, read once (``get_params`` is called per file scored
    or cached)."""
    names = []
    for param in list(inspect.signature(init).parameters.values())[1:]:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(
                f"{class_name}.__init__ must list its parameters explicitly, not *args/**kwargs"
            )
        names.append(param.name)
    return tuple(names)
