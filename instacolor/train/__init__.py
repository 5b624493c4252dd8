"""Training the three stages of instacolor's networks (see ``tools/train.py``)."""
