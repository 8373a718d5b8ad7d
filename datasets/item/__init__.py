"""Building one dataset item: label spaces, code maps, annotation entries and entity records."""
