"""Import and export in other tools' formats (WEBKNOSSOS NML, Scale Nucleus, Datamint, ...)."""
