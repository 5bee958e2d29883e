"""agent.toml: the typed sections with their defaults (`sections`), and the validation building blocks
(`checks`). Imports nothing of the project outside this package.
"""
