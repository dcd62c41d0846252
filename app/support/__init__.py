"""Support staff: every environment's metadata, never document contents."""
