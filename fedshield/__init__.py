"""fedshield: a federated-learning security lab on Flower, Ray and TensorFlow."""

__version__ = "0.1.0"
