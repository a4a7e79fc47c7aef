"""Small, clearly named fixes for broken third-party installs. Each is a no-op where not needed."""
