"""The bottom layer: where fashionrec reads and writes (``settings``), what every artifact is called
(``layout``) and what each stage may spend at each scale (``presets``). Imports nothing else of the
project; see docs/architecture.md."""
