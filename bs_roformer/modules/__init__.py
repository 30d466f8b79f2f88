"""Building blocks shared by every model (one file per concept)."""
