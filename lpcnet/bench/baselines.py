"""The plain-Keras baseline of ``lpcnet bench train``: the kit's network written the straightforward way.

The layers here are test oracles and benchmark baselines, not part of the model: the same
maths as :class:`lpcnet.layers.MDense` and :class:`lpcnet.layers.TreeToPdf` in the form one
first writes them (docs/training.md, Speed). They are not registered for serialisation.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from lpcnet.layers import FastGaussianNoise, FusedGRU, MDense, TreeToPdf, tree_tables


class EinsumMDense(MDense):
    """MDense written the straightforward way: one einsum over (units, input, channels)."""

    def call(self, inputs):
        t = ops.tanh(ops.einsum("...i,uic->...uc", inputs, self.kernel) + self.bias)
        return self.activation(ops.sum(t * self.factor, axis=-1))


class GatherTreeToPdf(TreeToPdf):
    """TreeToPdf written the straightforward way: gather each level's node with ``tree_tables``."""

    def call(self, inputs):
        nodes, bits = tree_tables(self.levels)
        pdf = None
        for b in range(self.depth):
            g = ops.take(inputs, nodes[b].tolist(), axis=-1)
            bit = ops.convert_to_tensor(bits[b].astype(np.float32), dtype=self.compute_dtype)
            f = (1.0 - bit) + g * (2.0 * bit - 1.0)    # bit ? g : 1 - g
            pdf = f if pdf is None else pdf * f
        return pdf


def _plain_layer(layer):
    """The straightforward counterpart of one of the kit's layers (others are cloned as they are)."""
    config = layer.get_config()
    if isinstance(layer, FusedGRU):
        config.pop("fused")
        return keras.layers.GRU.from_config(config)
    if isinstance(layer, FastGaussianNoise):
        config.pop("numpy_draws")
        return keras.layers.GaussianNoise.from_config(config)
    for ours, straight in ((MDense, EinsumMDense), (TreeToPdf, GatherTreeToPdf)):
        if isinstance(layer, ours):
            return straight.from_config(config)
    return layer.__class__.from_config(config)


def plain_keras_model(model):
    """``model``'s network and weights written the straightforward way.

    A plain ``keras.Model`` (Keras' default train_step) with ``keras.layers.GRU`` loops, the
    dual FC as one einsum, the probability tree by gathers (:class:`EinsumMDense`,
    :class:`GatherTreeToPdf`) and ``keras.layers.GaussianNoise``: the same function as
    ``model`` (the tests check the loss), the way one would first write it in Keras 3.
    """
    plain = keras.models.clone_model(model, clone_function=_plain_layer)
    plain = keras.Model(plain.inputs, plain.outputs, name="plain")
    for src, dst in zip(model.layers, plain.layers):
        dst.set_weights(src.get_weights())
    return plain
