"""Knowledge distillation with a hand-written tf_keras loop (the Keras 3 Distiller does not apply).

Classification: loss = alpha * CE(labels, student) + (1 - alpha) * T^2 * KL(teacher_T || student_T),
where x_T = softmax(logits / T). The teacher's logits are recovered as log(probabilities): a
softmax is shift-invariant, so softmax(log p / T) is exactly the teacher softened at T.
Regression: loss = alpha * MSE(labels, student) + (1 - alpha) * MSE(teacher output, student).

`distil=False` trains the same student (same seeded initial weights, epochs, batches, learning
rate) on labels only: the control that shows what distillation bought. Both keep the weights of
the epoch with the lowest label loss on the validation split. Each call compiles its own training
step (a tf.function no other call shares), so several students can train in separate threads.

When the teacher trained on shifted images (a CNN with `train.augment`), each epoch both students see
freshly shifted training images (the same ones: one seeded generator), and the teacher labels the very
images the student sees ("consistent teaching"): soft targets for views the hard labels only approximate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tasks.compression.common import CompressionData, Task, clone_teacher
from tasks.compression.measure import keras_predict
from tasks.compression.settings import DistillationSettings


@dataclass(frozen=True)
class TrainedStudent:
    model: Any
    distilled: bool
    width_factor: float
    student_params: int
    teacher_params: int
    best_epoch: int
    val_label_loss: float

    def summary(self) -> dict[str, Any]:
        return {
            "distilled": self.distilled,
            "width_factor": self.width_factor,
            "student_params": self.student_params,
            "teacher_params": self.teacher_params,
            "best_epoch": self.best_epoch,
            "val_label_loss": round(self.val_label_loss, 6),
        }


def seeded_init(model: Any, seed: int) -> None:
    """Glorot-uniform kernels and zero biases from a numpy generator: the same seed gives the
    same start in any thread (Keras initializers draw from TensorFlow's process-global seed)."""
    rng = np.random.default_rng(seed)
    weights = []
    for w in model.get_weights():
        if w.ndim >= 2:
            receptive = int(np.prod(w.shape[:-2])) if w.ndim > 2 else 1
            limit = np.sqrt(6.0 / (w.shape[-2] * receptive + w.shape[-1] * receptive))
            weights.append(rng.uniform(-limit, limit, size=w.shape).astype(w.dtype))
        else:
            weights.append(np.zeros_like(w))
    model.set_weights(weights)


def n_outputs_of(model: Any) -> int:
    return int(model.outputs[0].shape[-1])


def shifted_images(x: np.ndarray, shape: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    """Every flattened image moved by -1, 0 or +1 pixel on each axis (zeros shifted in), one draw per image."""
    height, width, channels = shape
    n = len(x)
    padded = np.pad(x.reshape(n, height, width, channels), ((0, 0), (1, 1), (1, 1), (0, 0)))
    dy, dx = rng.integers(0, 3, size=n), rng.integers(0, 3, size=n)
    rows = dy[:, None] + np.arange(height)[None, :]
    cols = dx[:, None] + np.arange(width)[None, :]
    moved = padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    return moved.reshape(n, -1).astype(np.float32)


def student_logits_fn(student: Any, tf: Any, keras: Any) -> Callable[[Any, bool], Any]:
    """Pre-softmax outputs of a student whose last layer is a softmax Dense (else log-probabilities)."""
    head = student.layers[-1]
    if getattr(getattr(head, "activation", None), "__name__", "") == "softmax":
        body = keras.Model(student.inputs, head.input)
        return lambda x, training: tf.matmul(body(x, training=training), head.kernel) + head.bias
    return lambda x, training: tf.math.log(tf.clip_by_value(student(x, training=training), 1e-12, 1.0))


def make_losses(
    task: Task, settings: DistillationSettings, distil: bool, student: Any, tf: Any, keras: Any
) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """(training loss(x, y, teacher_out), label-only loss(x, y)) for the task."""
    alpha = settings.alpha if distil else 1.0
    if task == "classification":
        logits, t = student_logits_fn(student, tf, keras), settings.temperature

        def label_loss(x: Any, y: Any, training: bool = False) -> Any:
            return tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits(x, training), from_logits=True))

        def loss(x: Any, y: Any, teacher_probs: Any) -> Any:
            s = logits(x, True)
            hard = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, s, from_logits=True))
            if alpha == 1.0:
                return hard
            soft_teacher = tf.nn.softmax(tf.math.log(tf.clip_by_value(teacher_probs, 1e-12, 1.0)) / t)
            kl = tf.reduce_sum(soft_teacher * (tf.math.log(soft_teacher + 1e-12) - tf.nn.log_softmax(s / t)), axis=-1)
            return alpha * hard + (1 - alpha) * t * t * tf.reduce_mean(kl)

        return loss, label_loss

    def label_loss(x: Any, y: Any, training: bool = False) -> Any:  # type: ignore[no-redef]
        return tf.reduce_mean(tf.square(student(x, training=training) - tf.reshape(y, (-1, 1))))

    def loss(x: Any, y: Any, teacher_out: Any) -> Any:  # type: ignore[no-redef]
        out = student(x, training=True)
        return alpha * tf.reduce_mean(tf.square(out - tf.reshape(y, (-1, 1)))) + (1 - alpha) * tf.reduce_mean(
            tf.square(out - teacher_out)
        )

    return loss, label_loss


def train_student(
    teacher: Any,
    student_builder: Callable[[float], Any],
    data: CompressionData,
    task: Task,
    settings: DistillationSettings,
    seed: int,
    distil: bool = True,
) -> TrainedStudent:
    """Train `student_builder(settings.width_factor)` against the teacher (or labels only when
    `distil=False`) and return it with the weights of its best validation epoch."""
    from tasks.model.tf_env import import_keras, import_tf

    keras, tf = import_keras(), import_tf()
    student = student_builder(settings.width_factor)
    seeded_init(student, seed)
    teacher_copy = clone_teacher(teacher)
    image_shape = getattr(student_builder, "image_shape", None) if settings.augment else None
    # the scratch control never reads the teacher's outputs (its loss is the labels' alone): zeros stand in
    outputs = n_outputs_of(teacher)
    teacher_out = (
        keras_predict(teacher_copy, data.x_train).astype(np.float32)
        if distil and image_shape is None
        else np.zeros((len(data.x_train), outputs), np.float32)
    )
    y_dtype = np.int32 if task == "classification" else np.float32
    train_x, y = data.x_train.astype(np.float32), data.y_train.astype(y_dtype)
    x = train_x
    x_val, y_val = tf.constant(data.x_val, tf.float32), tf.constant(data.y_val.astype(y_dtype))
    loss_fn, label_loss = make_losses(task, settings, distil, student, tf, keras)
    optimizer = keras.optimizers.Adam(settings.learning_rate)
    rng = np.random.default_rng(seed)
    best = (np.inf, 0, student.get_weights())
    shifts = np.random.default_rng(seed + 1)

    @tf.function(reduce_retracing=True)  # this call's own graph: students in other threads do not share it
    def step(xb: Any, yb: Any, tb: Any) -> Any:
        with tf.GradientTape() as tape:
            loss = loss_fn(xb, yb, tb)
        grads = tape.gradient(loss, student.trainable_variables)
        optimizer.apply_gradients(zip(grads, student.trainable_variables, strict=True))
        return loss

    for epoch in range(settings.epochs):
        if image_shape is not None:
            x = shifted_images(train_x, image_shape, shifts)
            if distil:
                teacher_out = keras_predict(teacher_copy, x).astype(np.float32)
        order = rng.permutation(len(x))
        for start in range(0, len(x), settings.batch_size):
            batch = order[start : start + settings.batch_size]
            step(tf.constant(x[batch]), tf.constant(y[batch]), tf.constant(teacher_out[batch]))
        val = float(label_loss(x_val, y_val))
        if val < best[0]:
            best = (val, epoch, student.get_weights())
    student.set_weights(best[2])
    return TrainedStudent(
        student, distil, settings.width_factor, student.count_params(), teacher.count_params(), best[1], best[0]
    )
