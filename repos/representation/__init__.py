"""The one representation of OCL JSON, one concept a module (see each module)."""
