"""agent.toml: the typed sections with their defaults (`sections`), reading and validating the file into them
(`load`), and the validation building blocks (`checks`). Imports nothing of the project outside this package.
"""
