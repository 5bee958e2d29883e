"""The admin pages (`site`, mounted at /admin/) and the JSON config API (`api_app`, mounted at /api/), two aiohttp
sub-applications with their own middlewares. May import the agent's parts and the connectors; only the
composition root (agent.app, agent.parts) and the command line import it.
"""
