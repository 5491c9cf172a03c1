"""The model layer: genome, search-space DSL, recipe sections, decode, blocks, builder, complexity.

Owns everything that describes a student: the genome and its text form, the TOML space file
(parsed into frozen dataclasses), the decoded architecture records, the one attention table, and
the modules built from them. May import only `nas.errors`, `nas.units` and `nas._version`.
`genome`, `space`, `recipe` and `decode` stay free of torch; torch starts at `blocks`.
"""
