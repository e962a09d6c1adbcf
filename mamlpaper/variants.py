"""The MAML variants, spelt once, and the curvature model each one obeys near a minimum.

``maml`` runs the variants, ``bounds`` gives the curvature models' α_c and β_c(α), ``symbolic``
derives both; this table joins them. On a quadratic (the paper's Section 3 setting) the
first-order and simplified updates both see curvature λ(1 − αλ)^k and exact MAML λ(1 − αλ)^{2k}
(derived in notebook 01, measured in notebook 02).
"""
from __future__ import annotations

VARIANTS = ("second", "first", "simplified")
"""second: exact MAML through the inner loop; first: FOMAML; simplified: the paper's g − αHg (Eq. 3-4)."""

CURVATURE_MODELS = ("simplified", "penalty", "exact")
"""λ(1 − αλ)^k, the literal penalty's λ − 2αλ² (Eq. 5-7), and exact MAML's λ(1 − αλ)^{2k}."""

CURVATURE_MODEL_OF = {"second": "exact", "first": "simplified", "simplified": "simplified"}
"""The curvature model each variant obeys; the penalty reading belongs to no variant that runs."""
