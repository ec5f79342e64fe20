"""DASM: Difficulty-Aligned Sequential Matching (see ../shared/paper/dasm-paper.txt)."""
