"""HTTP: the aiohttp server and its typed app keys, /health built from registered components, /metrics,
API tokens, and call-recording links (signed URLs, sources, MP3 transcoding). May import `config`,
`store` and `life`; the admin site and the API (as sub-applications) and the CRMs' callback routes are added
to it by the composition root.
"""
