"""Image input and output at the edges of the pipeline."""
