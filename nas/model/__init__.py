"""The model layer: genome, search-space DSL, recipe sections, decode, blocks, builder, complexity.

Owns everything that describes a student: the genome and its text form, the TOML space file
(parsed into frozen dataclasses), the decoded architecture records, the attention table, the
teacher table (`teachers`: the kinds and their trunk builders) and the modules built from them.
May import only `nas.errors`, `nas.units` and `nas._version`. `genome`, `space`, `recipe`,
`teachers` and `decode` stay free of torch; torch starts at `blocks` (the tables import their
torch builders on call), and the modules import each other without a loop.
"""
