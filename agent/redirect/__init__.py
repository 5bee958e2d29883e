"""Smart redirect: the FastAGI server and its wire format, the router that answers "who is this caller's
responsible manager", its cache in front of the CRMs' lookups, the enterprise's routing rules and the
dialplan variable names. May import `tracking` (phones, extension states), `config`, `store`, `web.health`,
and `connectors.base` for the lookup types; never `delivery`: the CRMs' lookups are handed in.
"""
