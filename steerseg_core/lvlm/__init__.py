"""lvlm subpackage."""
