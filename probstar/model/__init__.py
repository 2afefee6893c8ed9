"""The network (token embedding, set encoder, query decoder) and its output heads."""

from .heads import HEADS, MARGINAL_HEADS, FlowHead, GaussianHead, Head, MixtureHead, make_head
from .network import ModelConfig, ProbStarNet

__all__ = ["ModelConfig", "ProbStarNet", "Head", "GaussianHead", "MixtureHead", "FlowHead",
           "HEADS", "MARGINAL_HEADS", "make_head"]
