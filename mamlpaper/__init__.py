"""mamlpaper: companion to "Role of Two Learning Rates in Convergence of Model-agnostic Meta-learning"."""

__version__ = "0.1.0"
