"""PMANet: the weakly-supervised Part-Mentored Attention Network for vehicle re-identification

Modules:

- `pmanet.diagnostics`: Where a ranking fails on the synthetic benchmark: the right near-duplicate group, then the right vehicle within it, each against its chance level."""

__version__ = "0.1.0"
