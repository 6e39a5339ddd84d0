"""What goes into a network: image decoding with its limits, preprocessing, the shipped samples, datasets."""
