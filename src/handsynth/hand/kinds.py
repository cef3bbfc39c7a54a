"""The hand models this project knows by name (a leaf: reading it imports nothing heavy)."""

HAND_MODEL_KINDS = ("openhand", "mano")
