"""LPCNet research kit: formats, data preparation, features, model, training, synthesis.

Importing the package is cheap: TensorFlow and Horovod are imported only by the
stages that need them.
"""

__version__ = "0.1.0"
