"""Train: a tf_keras model with Adam, a learning-rate schedule, early stopping, class weights and seeds.

Checkpoints go to `checkpoint_dir` after every epoch (Keras BackupAndRestore: weights, optimizer
state and epoch). A run interrupted mid-training and started again with the same folder resumes
from the last finished epoch; the folder is emptied when training completes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tasks.config import PmfConfig, TrainConfig
from tasks.model.builders import Task, build_cnn, build_mlp
from tasks.model.tf_env import import_keras, import_tf
from tasks.workspace import pmf_home

EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass
class TrainResult:
    model: Any
    history: dict[str, list[float]]
    epochs_run: int
    resumed_from_epoch: int
    parameters: int
    warm_start: bool = False  # started from given weights (a retrain from production), not from scratch


# Settings only one kind of model reads: the other kind's run does not log them (an MLP has no conv filters).
MODEL_ONLY_PARAMS: dict[str, set[str]] = {"mlp": set(), "cnn": {"image_shape", "conv_filters", "augment"}}


def model_params(cfg: TrainConfig) -> dict[str, Any]:
    """The training settings that apply to the model `cfg.model` builds (what a run logs as its params)."""
    foreign = set().union(*(keys for model, keys in MODEL_ONLY_PARAMS.items() if model != cfg.model))
    return {k: v for k, v in cfg.model_dump().items() if k not in foreign}


def checkpoint_key(data_sha256: str, cfg: PmfConfig) -> str:
    """Same data + same whole config = same key (16 hex digits); any change of either = a new key."""
    return hashlib.sha256((data_sha256 + cfg.model_dump_json()).encode()).hexdigest()[:16]


def checkpoint_dir(name: str, data_sha256: str, cfg: PmfConfig) -> Path:
    """`$PMF_HOME/checkpoints/<name>/<key>`: a rerun of the same data and config after an
    interruption finds its checkpoint there and resumes."""
    return pmf_home() / "checkpoints" / name / checkpoint_key(data_sha256, cfg)


def build_model(cfg: TrainConfig, input_dim: int, n_outputs: int, task: Task) -> Any:
    if cfg.model == "cnn":
        assert cfg.image_shape is not None  # enforced by TrainConfig
        return build_cnn(input_dim, n_outputs, cfg.image_shape, cfg.conv_filters, cfg.hidden_units, cfg.dropout, task)
    return build_mlp(input_dim, n_outputs, cfg.hidden_units, cfg.dropout, task)


def learning_rate(cfg: TrainConfig, total_steps: int) -> Any:
    keras = import_keras()
    if cfg.lr_schedule == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(
            cfg.learning_rate, decay_steps=total_steps, decay_rate=cfg.lr_decay_rate
        )
    if cfg.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(cfg.learning_rate, decay_steps=total_steps, alpha=0.05)
    return cfg.learning_rate


def compile_model(model: Any, task: str, lr: Any) -> None:
    keras = import_keras()
    if task == "classification":
        model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    else:
        model.compile(optimizer=keras.optimizers.Adam(lr), loss="mse", metrics=["mae"])


def balanced_class_weights(y: np.ndarray, n_classes: int) -> dict[int, float]:
    """Weights n / (k * count): each class contributes equally to the loss (sklearn's 'balanced')."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.ones(n_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return {i: float(w) for i, w in enumerate(weights)}


def train_model(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    task: Task,
    n_outputs: int,
    cfg: TrainConfig,
    checkpoint_dir: Path,
    on_epoch: EpochCallback | None = None,
    extra_callbacks: tuple[Any, ...] = (),
    initial_weights: list[np.ndarray] | None = None,
) -> TrainResult:
    """Train a model built from `cfg`; `initial_weights` (shaped as that model's: the caller checked) start
    it where another model left off (warm start), else it starts from seeded random weights."""
    keras = import_keras()
    keras.utils.set_random_seed(cfg.seed)
    model = build_model(cfg, x_train.shape[1], n_outputs, task)
    if initial_weights is not None:
        model.set_weights(initial_weights)
    steps_per_epoch = int(np.ceil(len(x_train) / cfg.batch_size))
    compile_model(model, task, learning_rate(cfg, steps_per_epoch * cfg.epochs))
    with checkpoint_folder(checkpoint_dir) as folder:
        resumed = _checkpointed_epoch(folder)
        callbacks = [
            keras.callbacks.BackupAndRestore(str(folder), save_freq="epoch", delete_checkpoint=True),
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.early_stopping_patience, restore_best_weights=True),
            *([keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: on_epoch(e + 1, _floats(logs)))] if on_epoch else []),
            *extra_callbacks,
        ]
        history = model.fit(
            _training_data(x_train, y_train, task, n_outputs, cfg),
            validation_data=(x_val, y_val),
            epochs=cfg.epochs,
            callbacks=callbacks,
            verbose=0,
        )
    epochs_run = resumed + len(history.epoch)
    return TrainResult(
        model,
        {k: [float(v) for v in vals] for k, vals in history.history.items()},
        epochs_run,
        resumed,
        model.count_params(),
        initial_weights is not None,
    )


@contextmanager
def checkpoint_folder(checkpoint_dir: Path) -> Iterator[Path]:
    """`checkpoint_dir` while this process trains in it (an flock beside it; the kernel drops it if the process
    dies). Another command training the same data and config at that moment (two `pmf run`s at once) gets
    a private folder instead, removed afterwards: sharing one, each would delete the other's checkpoint files."""
    import fcntl
    import os
    import shutil

    checkpoint_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(checkpoint_dir.parent / f"{checkpoint_dir.name}.lock", "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            private = checkpoint_dir.parent / f"{checkpoint_dir.name}-pid{os.getpid()}"
            try:
                yield private
            finally:
                shutil.rmtree(private, ignore_errors=True)
            return
        try:
            yield checkpoint_dir
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _training_data(x: np.ndarray, y: np.ndarray, task: str, n_outputs: int, cfg: TrainConfig) -> Any:
    """A seeded, shuffled tf.data pipeline; sample weights carry the class weights; images get shifted."""
    tf = import_tf()
    weights = np.ones(len(y), dtype=np.float32)
    if task == "classification" and cfg.class_weights:
        table = balanced_class_weights(y, n_outputs)
        weights = np.asarray([table[i] for i in range(n_outputs)], dtype=np.float32)[y]
    data = tf.data.Dataset.from_tensor_slices((x, y, weights))
    data = data.shuffle(min(len(x), 100_000), seed=cfg.seed, reshuffle_each_iteration=True).batch(cfg.batch_size)
    if cfg.model == "cnn" and cfg.augment:
        # one call at a time: the shift's seeded random state is drawn batch after batch in order, so the
        # same seed trains the same model (parallel calls drew it in whatever order threads ran)
        data = data.map(_pixel_shift(cfg))
    return data.prefetch(tf.data.AUTOTUNE)


def _pixel_shift(cfg: TrainConfig) -> Callable:
    keras = import_keras()
    tf = import_tf()
    height, width, channels = cfg.image_shape or (0, 0, 0)
    shift = keras.layers.RandomTranslation(1 / height, 1 / width, fill_mode="constant", seed=cfg.seed)

    def augment(x: Any, y: Any, w: Any) -> tuple[Any, Any, Any]:
        images = tf.reshape(x, (-1, height, width, channels))
        return tf.reshape(shift(images, training=True), (-1, height * width * channels)), y, w

    return augment


def _checkpointed_epoch(checkpoint_dir: Path) -> int:
    """The epoch a previous, interrupted run reached in this folder (0 when starting fresh)."""
    tf = import_tf()

    latest = tf.train.latest_checkpoint(str(checkpoint_dir / "chief")) or tf.train.latest_checkpoint(str(checkpoint_dir))
    if not latest:
        return 0
    reader = tf.train.load_checkpoint(latest)
    for key in reader.get_variable_to_shape_map():
        if key.startswith("ckpt_saved_epoch"):
            return int(reader.get_tensor(key)) + 1
    return 0


def _floats(logs: dict | None) -> dict[str, float]:
    return {k: float(v) for k, v in (logs or {}).items()}
