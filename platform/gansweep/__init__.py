"""gansweep: distributed sweeps for GAN research on Ray."""

__version__ = "0.1.0"
