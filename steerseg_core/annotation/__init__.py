"""annotation subpackage."""
