"""PMANet: the weakly-supervised Part-Mentored Attention Network for vehicle re-identification"""

__version__ = "0.1.0"
