"""HTTP: route matching, input reading, error bodies, the aiohttp application."""
