"""The package's version, in a module of its own that imports nothing: the package root, setup.py and the
metadata of the model files we write read it from here."""
__version__ = "0.1.0"
