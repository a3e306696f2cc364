"""agegender: gender and age-group classification of faces, two architectures compared."""

__version__ = "0.1.0"
