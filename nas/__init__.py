"""nas: declarative architecture search for small image classifiers."""
