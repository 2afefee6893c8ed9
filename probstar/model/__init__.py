"""The network (token embedding, set encoder, query decoder) and its output heads."""

from .heads import HEADS, GaussianHead, Head, make_head
from .network import ModelConfig, ProbStarNet

__all__ = ["ModelConfig", "ProbStarNet", "Head", "GaussianHead", "HEADS", "make_head"]
