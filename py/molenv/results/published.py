"""What the accuracy table compares our numbers with: the published ones and the goal."""
from __future__ import annotations

GOAL = 0.98  # micro F1, both models on both molecules

# METHOD.md §6 (Kuroshima et al., JCTC 2024): micro F1 on their test data. None: not
# published as a number; the note says what was published instead.
PUBLISHED = {
    "urea": {
        "sf": {"f1_polymorph": 0.98, "note": ">= 0.98 (bulk only)"},
        "gnn": {"f1_polymorph": 0.969, "f1_topology": 0.960, "note": "crystals 200 K + melt 350 K"},
    },
    "nicotinamide": {
        "sf": {"f1_polymorph": None, "note": "\"excellent\" (confusion matrix in the SI; bulk only)"},
        "gnn": {"f1_polymorph": 0.875, "f1_topology": 0.922, "note": "350 K"},
    },
}
