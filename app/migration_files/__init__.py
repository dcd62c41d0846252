"""Migration files: administrations exported to a BagIt package and imported from one
(the second way in, after Nextens' desktop-to-cloud migration)."""
