"""Model kinds (as keras-hub has tasks): what a kind of model is and how every part of FaceML
treats it, registered by name like the architecture presets.

    from faceml.modeling import kinds
    kinds.names()                  # ['classifier', 'vae']
    kinds.for_arch("vae")          # the VAE kind; any preset of the architecture registry (or an
                                   # unknown name, which its check rejects) -> the classifier kind
    cfg.kind                       # the same, for a TrainConfig

A kind says

- which architectures it builds (``archs``; None = the architecture registry's presets) and
  its own parameters' defaults (``defaults``),
- ``check(cfg, labels)``: every check of a configuration's model before data is read,
- ``heads(cfg, prep)`` / ``placeholder_heads(cfg, labels)``: its heads (from the data, or good
  enough for shapes before it),
- ``build``, ``compile(model, cfg, heads, optimizer)``, ``targets`` (x, y, sample weights for
  ``fit``),
- what a run stores: a kind that ``predicts_labels`` stores predictions (``outputs``) and the
  metrics computed from them; any other stores ``split_metrics`` per split (a VAE: its
  reconstruction error),
- how the pages use it: ``uses_heads`` (the Train form asks for labels), ``evaluable``
  (Evaluate lists its runs), ``predicts_labels`` (Predict offers it), ``studio`` (the VAE
  studio opens it).

A new kind is one file: subclass :class:`ModelKind`, then ``kinds.register(MyKind())``. The
configuration and run types are passed in as arguments (this module sits below them).
"""

from __future__ import annotations

import numpy as np

from faceml.errors import ConfigError


class ModelKind:
    """The interface of a model kind; the defaults are a labelled (head-per-label) model's."""

    name: str = ""
    title: str = ""
    archs: tuple[str, ...] | None = None
    """The architecture names this kind builds; None: the architecture registry's presets."""
    defaults: dict = {}
    """Defaults of the kind's own ``arch_params`` (the Train form starts from them)."""
    uses_heads: bool = True
    predicts_labels: bool = True
    evaluable: bool = True
    studio: bool = False
    refusal: str = "predicts no labels"
    """Why Predict refuses a model of a kind that predicts no labels (after "is a …: ")."""

    # --- which architectures ------------------------------------------------------------------
    def defaults_for(self, arch: str) -> dict:
        """The defaults of ``arch``'s own parameters (a kind with several architectures may
        give each its own); the kind's ``defaults`` unless overridden."""
        return dict(self.defaults)

    def arch_names(self) -> list[str]:
        """The architectures the Train page offers for this kind."""
        if self.archs is None:
            from faceml.modeling import architectures

            return architectures.names()
        return list(self.archs)

    # --- before any data ----------------------------------------------------------------------
    def placeholder_heads(self, cfg, labels: dict) -> list:
        """Heads good enough to build the model before the data is read (shapes, counts)."""
        if not self.uses_heads:
            return []
        from faceml.data.heads import placeholder_head

        return _binary_output(cfg, [placeholder_head(labels[h]) for h in cfg.heads])

    def check(self, cfg, labels: dict) -> None:
        """Raise ConfigError for anything about ``cfg``'s model that cannot work."""
        from faceml.modeling import architectures

        architectures.check(cfg.arch, cfg.data.size, cfg.data.color,
                            self.placeholder_heads(cfg, labels), **cfg.arch_params)
        scaling = getattr(cfg, "scaling", "zscore")
        if scaling != "zscore" and architectures.get(cfg.arch).scaling != "fitted":
            raise ConfigError(f"{cfg.arch} takes raw pixels (its backbone scales them itself), "
                              f"so scaling {scaling!r} cannot apply; keep the default zscore")

    # --- building and training ----------------------------------------------------------------
    def heads(self, cfg, prep) -> list:
        """The head specs fitted on the prepared data (regression targets scaled on train)."""
        if not self.uses_heads:
            return []
        return _binary_output(cfg, prep.heads(cfg.heads, cfg.head_weights, cfg.age_loss))

    def build(self, cfg, heads, prep=None, metadata: dict | None = None):
        """The (uncompiled) model, its scaling fitted on ``prep``'s training split. Without
        ``prep``: the model's shapes only (layer table, parameter counts): default scaling, no
        augmentation, no pretrained weights (nothing to download)."""
        from faceml.modeling import architectures

        params = dict(cfg.arch_params)
        extra: dict = {}
        if prep is None:  # a transfer preset's default weights too: nothing to download
            if "weights" in params or architectures.get(cfg.arch).transfer:
                params["weights"] = None
        else:
            mean, std = prep.scaling(getattr(cfg, "scaling", "zscore"))
            aug = [{"type": a} for a in sorted(set(cfg.augmentation))]
            extra = {"mean": mean, "std": std, "metadata": metadata,
                     "augmentation": aug or None}
        return architectures.build(cfg.arch, image_size=cfg.data.size, color=cfg.data.color,
                                   heads=heads, **extra, **params)

    def compile(self, model, cfg, heads, optimizer):
        import keras

        losses, weights, metrics = {}, {}, {}
        for h in heads:
            if h.loss.startswith("interval_"):  # several datasets: ages as intervals
                from faceml.modeling.losses import IntervalLoss, interval_mae

                losses[h.name] = IntervalLoss(5.0 if h.loss == "interval_huber" else None)
                metrics[h.name] = [interval_mae()]
            elif h.kind == "regression":
                losses[h.name] = keras.losses.Huber(delta=5.0) if h.loss == "huber" else "mae"
                metrics[h.name] = ["mae"]
            else:
                losses[h.name] = h.loss
                metrics[h.name] = ["accuracy"]
            weights[h.name] = h.weight
        model.compile(optimizer=optimizer, loss=losses, loss_weights=weights, metrics=metrics)
        return model

    def targets(self, cfg, prep, heads, index: np.ndarray):
        """``(x, y, sample_weight)`` of the faces at ``index``, shaped for ``model.fit``; a face
        without a head's label (several datasets) has weight 0 for that head."""
        y, sw = prep.fit_targets(heads, index, balanced=cfg.class_weights)
        return prep.x[index], y, sw

    # --- what a run stores --------------------------------------------------------------------
    def outputs(self, model, x: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
        """One array per head (a kind that ``predicts_labels``: stored as predictions)."""
        from faceml.modeling.modelio import predict_arrays

        return predict_arrays(model, x, batch_size)

    def split_metrics(self, model, cfg, prep, split: str) -> dict:
        """The metrics a run of a kind that predicts no labels stores for one split."""
        raise NotImplementedError(f"model kind {self.name!r} stores no metrics of its own")


def _binary_output(cfg, heads: list) -> list:
    """The heads with ``cfg.binary_output`` applied to the binary ones (1 sigmoid unit or a
    2-unit softmax)."""
    output = getattr(cfg, "binary_output", "sigmoid")
    return [h.with_output(output) for h in heads]


class Classifier(ModelKind):
    """One output per chosen label (binary, multiclass or age regression) on a registered
    architecture preset."""

    name = "classifier"
    title = "classifier"


class VAE(ModelKind):
    """The convolutional variational auto-encoder (:mod:`faceml.modeling.vae`): reconstructs
    faces, predicts no labels; the VAE studio looks inside it."""

    name = "vae"
    title = "VAE"
    archs = ("vae", "vae_notebook")  # the project's VAE; the FairFace notebook's, layer for layer
    defaults = {"latent_dim": 10, "beta": 0.05, "recon": "mse", "filters": [32, 64]}
    uses_heads = False
    predicts_labels = False
    evaluable = False
    studio = True
    refusal = "it reconstructs faces and predicts no labels"

    def defaults_for(self, arch: str) -> dict:
        from faceml.modeling import vae

        return dict(vae.DEFAULTS.get(arch, self.defaults))

    def _builder(self, arch: str):
        from faceml.modeling import vae

        if arch not in vae.BUILDERS:
            raise ConfigError(f"unknown VAE architecture {arch!r}; choose "
                              f"{', '.join(vae.BUILDERS)}")
        return vae.BUILDERS[arch]

    def check(self, cfg, labels: dict) -> None:
        self._builder(cfg.arch)[0](cfg.data.size, cfg.data.color, **cfg.arch_params)
        if getattr(cfg, "scaling", "zscore") != "zscore":
            raise ConfigError("a VAE scales pixels to [0, 1] itself (/255), so scaling "
                              f"{cfg.scaling!r} cannot apply; keep the default")

    def build(self, cfg, heads, prep=None, metadata: dict | None = None):
        return self._builder(cfg.arch)[1](cfg.data.size, cfg.data.color, metadata=metadata,
                                          **cfg.arch_params)

    def compile(self, model, cfg, heads, optimizer):
        from faceml.modeling import vae

        d = self.defaults_for(cfg.arch)
        return vae.compile_vae(model, optimizer, beta=cfg.arch_params.get("beta", d["beta"]),
                               recon=cfg.arch_params.get("recon", d["recon"]))

    def targets(self, cfg, prep, heads, index: np.ndarray):
        from faceml.modeling import vae

        x = prep.x[index]
        return x, vae.vae_targets(x), None

    def split_metrics(self, model, cfg, prep, split: str) -> dict:
        """Reconstruction error of the split's faces, beside the error of the training split's
        mean face (the baseline a model that learnt nothing reaches)."""
        from faceml.modeling import vae

        idx = prep.split_index(split)
        rec = vae.reconstruct(model, prep.x[idx])
        xs = prep.x[idx].astype("float32") / 255
        mse = float(np.mean((rec.astype("float32") / 255 - xs) ** 2))
        mean = prep.x[prep.split_index("train")].astype("float32").mean(0) / 255
        base = float(np.mean((xs - mean) ** 2))
        return {"dataset": cfg.data.dataset, "split": split, "n": int(len(idx)),
                "recon_mse": mse, "mean_image_mse": base}


_REGISTRY: dict[str, ModelKind] = {}
DEFAULT = "classifier"
"""The kind of an architecture no other kind claims (the registry's presets)."""


def register(kind: ModelKind) -> ModelKind:
    if not kind.name or not kind.name.isidentifier():
        raise ValueError(f"model kind name {kind.name!r} must be a Python identifier")
    if kind.name in _REGISTRY:
        raise ValueError(f"model kind {kind.name!r} is already registered")
    claimed = {a for k in _REGISTRY.values() for a in (k.archs or ())}
    taken = sorted(claimed & set(kind.archs or ()))
    if taken:
        raise ValueError(f"architecture {taken[0]!r} already belongs to another model kind")
    _REGISTRY[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Remove a kind (tests registering their own); the built-in kinds stay."""
    if name in (Classifier.name, VAE.name):
        raise ValueError(f"model kind {name!r} is built in")
    _REGISTRY.pop(name, None)


def names() -> list[str]:
    return list(_REGISTRY)


def get(name: str) -> ModelKind:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown model kind {name!r}; choose {', '.join(_REGISTRY)}") \
            from None


def for_arch(arch) -> ModelKind:
    """The kind that builds ``arch``: the one claiming it, else the classifier kind (whose
    check names an unknown architecture)."""
    for kind in _REGISTRY.values():
        if kind.archs and arch in kind.archs:
            return kind
    return _REGISTRY[DEFAULT]


def arch_names() -> list[str]:
    """Every architecture the Train page offers, kind by kind in registration order."""
    return [a for k in _REGISTRY.values() for a in k.arch_names()]


register(Classifier())
register(VAE())
