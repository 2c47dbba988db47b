"""Getting samples in: discovery of a source, decoding of an image file."""
