"""The demo world: two tenants, three real models, two months of traffic, known incidents.

`world.build_world` writes it under one folder (generating processes in `generators`, the
models in `models`, the incidents in `incidents`); `aiops demo` monitors it and `grading` says
what was detected, how late, and what nothing explains; `receiver` is the local webhook the
demo's alert routes post to. Plain Python: the CLI and the tests call it.
"""
